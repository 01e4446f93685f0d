package billing

import (
	"testing"
	"time"
)

func TestAddMonths(t *testing.T) {
	d := func(y int, m time.Month, day int) time.Time { return time.Date(y, m, day, 10, 30, 0, 0, time.UTC) }
	tests := []struct {
		anchor time.Time
		n      int64
		want   time.Time
	}{
		{d(2024, 1, 31), 1, d(2024, 2, 29)}, // leap year
		{d(2025, 1, 31), 1, d(2025, 2, 28)},
		{d(2024, 1, 31), 2, d(2024, 3, 31)}, // counted from the anchor, not from Feb 29
		{d(2024, 1, 31), 3, d(2024, 4, 30)},
		{d(2024, 1, 30), 1, d(2024, 2, 29)},
		{d(2024, 1, 29), 1, d(2024, 2, 29)},
		{d(2025, 1, 29), 1, d(2025, 2, 28)},
		{d(2024, 3, 31), 11, d(2025, 2, 28)},
		{d(2024, 2, 29), 12, d(2025, 2, 28)},
		{d(2024, 2, 29), 48, d(2028, 2, 29)},
		{d(2024, 12, 15), 1, d(2025, 1, 15)},
		{d(2024, 5, 31), 0, d(2024, 5, 31)},
		{d(2024, 8, 31), 1, d(2024, 9, 30)},
	}
	for _, tc := range tests {
		if got := addMonths(tc.anchor, tc.n); !got.Equal(tc.want) {
			t.Errorf("addMonths(%s, %d) = %s, want %s", tc.anchor.Format(time.DateOnly), tc.n, got.Format(time.DateOnly), tc.want.Format(time.DateOnly))
		}
	}
}

func TestPeriodAt(t *testing.T) {
	anchor := time.Date(2024, 1, 31, 0, 0, 0, 0, time.UTC)
	tests := []struct {
		now  time.Time
		want int64
	}{
		{anchor, 0},
		{time.Date(2024, 2, 28, 23, 0, 0, 0, time.UTC), 0},
		{time.Date(2024, 2, 29, 0, 0, 0, 0, time.UTC), 1},
		{time.Date(2024, 3, 30, 0, 0, 0, 0, time.UTC), 1},
		{time.Date(2024, 3, 31, 0, 0, 0, 0, time.UTC), 2},
		{time.Date(2025, 1, 31, 0, 0, 0, 0, time.UTC), 12},
	}
	for _, tc := range tests {
		if got := periodAt(anchor, 0, tc.now); got != tc.want {
			t.Errorf("periodAt(%s) = %d, want %d", tc.now, got, tc.want)
		}
	}
}

func TestEncodeSubscriptionRoundTrip(t *testing.T) {
	at := time.Date(2025, 3, 14, 15, 9, 26, 535897000, time.UTC)
	s := Subscription{ID: "sub_1", AccountID: "a", PlanCode: "pro", Status: StatusPastDue, Interval: "year", Anchor: at,
		Cycle: 3, CurrentPeriodStart: at, CurrentPeriodEnd: at.AddDate(0, 1, 0), PendingPlanCode: "basic",
		CancelAtPeriodEnd: true, PastDueSince: at, GraceEndsAt: at, CreatedAt: at, UpdatedAt: at, PeriodIndex: 2,
		GrantedCycle: 3, AllowanceCycle: 2, CarryIn: carryRollover, CarryEnd: at, Key: "k", ChangeKey: "c", DueAt: at}
	b, err := EncodeSubscription(&s)
	if err != nil {
		t.Fatal(err)
	}
	got, err := DecodeSubscription(b)
	if err != nil {
		t.Fatal(err)
	}
	if got != s {
		t.Fatalf("round trip:\n got %+v\nwant %+v", got, s)
	}
}
