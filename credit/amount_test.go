package credit

import (
	"encoding/json"
	"testing"
)

func TestParseAndString(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in   string
		want Amount
		str  string
	}{
		{"12", 12_000_000, "12"},
		{"0.5", 500_000, "0.5"},
		{"-3.25", -3_250_000, "-3.25"},
		{"0.000001", 1, "0.000001"},
		{"1e3", 1_000_000_000, "1000"},
		{"2.5e-1", 250_000, "0.25"},
		{"1.500000", 1_500_000, "1.5"},
		{"+7", 7_000_000, "7"},
		{"0", 0, "0"},
		{".5", 500_000, "0.5"},
	}
	for _, tt := range tests {
		got, err := Parse(tt.in)
		if err != nil {
			t.Fatalf("Parse(%q): %v", tt.in, err)
		}
		if got != tt.want {
			t.Errorf("Parse(%q) = %d, want %d", tt.in, got, tt.want)
		}
		if got.String() != tt.str {
			t.Errorf("Parse(%q).String() = %q, want %q", tt.in, got.String(), tt.str)
		}
	}
}

func TestParseRejects(t *testing.T) {
	t.Parallel()
	for _, in := range []string{"", "abc", "1.0000001", "1e400", "99999999999999999999", "1..2", "-", "."} {
		if v, err := Parse(in); err == nil {
			t.Errorf("Parse(%q) = %v, want error", in, v)
		}
	}
}

func TestJSON(t *testing.T) {
	t.Parallel()
	var v struct{ A, B Amount }
	if err := json.Unmarshal([]byte(`{"A":0.5,"B":"18"}`), &v); err != nil {
		t.Fatal(err)
	}
	if v.A != 500_000 || v.B != Credits(18) {
		t.Fatalf("got %+v", v)
	}
	out, _ := json.Marshal(v)
	if string(out) != `{"A":0.5,"B":18}` {
		t.Fatalf("marshal = %s", out)
	}
}

func TestOverflow(t *testing.T) {
	t.Parallel()
	if _, err := Max.Add(1); err == nil {
		t.Fatal("Max+1 did not overflow")
	}
	if _, err := Max.MulInt(2); err == nil {
		t.Fatal("Max*2 did not overflow")
	}
	if v, err := Credits(3).MulInt(-4); err != nil || v != Credits(-12) {
		t.Fatalf("3*-4 = %v, %v", v, err)
	}
}

func FuzzParse(f *testing.F) {
	for _, s := range []string{"1", "0.5", "-2.25", "1e3", "abc"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		a, err := Parse(s)
		if err != nil {
			return
		}
		b, err := Parse(a.String())
		if err != nil || a != b {
			t.Fatalf("round trip %q -> %v -> %v (%v)", s, a, b, err)
		}
	})
}
