package ledger

import (
	"fmt"
	"testing"
)

func TestOwnersKeepTwoGenerations(t *testing.T) {
	o := newOwners(3)
	for i := range 3 {
		o.put(fmt.Sprint("hd_", i), fmt.Sprint("acct-", i))
	}
	// The fourth entry starts a new generation; the first three stay
	// readable as the old one.
	o.put("hd_3", "acct-3")
	for i := range 4 {
		got, ok := o.get(fmt.Sprint("hd_", i))
		if want := fmt.Sprint("acct-", i); !ok || got != want {
			t.Fatalf("get(hd_%d) = %q, %v; want %q, true", i, got, ok, want)
		}
	}
	// Filling the second generation drops the first.
	o.put("hd_4", "acct-4")
	o.put("hd_5", "acct-5")
	o.put("hd_6", "acct-6")
	if _, ok := o.get("hd_0"); ok {
		t.Fatal("hd_0 survived two generations")
	}
	for _, id := range []string{"hd_3", "hd_4", "hd_5", "hd_6"} {
		if _, ok := o.get(id); !ok {
			t.Fatalf("%s was dropped too early", id)
		}
	}
	if _, ok := o.get("hd_unknown"); ok {
		t.Fatal("an unknown id was found")
	}
}
