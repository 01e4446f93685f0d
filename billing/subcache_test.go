package billing

import (
	"testing"
	"time"
)

// A read of the store that started before a write and ends after it must
// not put back the subscription the write replaced.
func TestSubCacheReadRacingWrite(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	c := newSubCache(time.Minute)
	_, ok, gen := c.get("a", now)
	if ok {
		t.Fatal("an empty cache answered")
	}
	// The write lands between the read's miss and its put.
	c.forget("a")
	c.put("a", cachedSub{terms: planTerms{plan: "old"}, found: true, at: now}, gen)
	if _, ok, _ := c.get("a", now); ok {
		t.Fatal("the cache kept a read older than a write")
	}
	// A read after the write is kept, for the cache's age.
	_, _, gen = c.get("a", now)
	c.put("a", cachedSub{terms: planTerms{plan: "new"}, found: true, at: now}, gen)
	if e, ok, _ := c.get("a", now.Add(time.Minute-time.Nanosecond)); !ok || e.terms.plan != "new" {
		t.Fatalf("got %+v, %v; want the plan read after the write", e, ok)
	}
	if _, ok, _ := c.get("a", now.Add(time.Minute)); ok {
		t.Fatal("an entry as old as the cache's age answered")
	}
	if newSubCache(0) != nil {
		t.Fatal("a zero age made a cache")
	}
}
