package billing

import "time"

// addMonths returns the date n months after t on t's day of the month, or on
// the month's last day when the month is shorter: a cycle anchored on Jan 31
// renews on Feb 28 (29 in a leap year), Mar 31, Apr 30, ... Always counted
// from the anchor, so a short month never shifts later cycles.
func addMonths(t time.Time, n int64) time.Time {
	t = t.UTC()
	y, m, d := t.Date()
	total := int64(y)*12 + int64(m-1) + n
	ny, nm := int(total/12), time.Month(total%12+1)
	if last := daysIn(ny, nm); d > last {
		d = last
	}
	hh, mm, ss := t.Clock()
	return time.Date(ny, nm, d, hh, mm, ss, t.Nanosecond(), time.UTC)
}

func daysIn(y int, m time.Month) int {
	return time.Date(y, m+1, 0, 0, 0, 0, 0, time.UTC).Day()
}

// periodAt returns the index of the monthly period of the anchor's
// sequence that holds now, searching from index from: what the current
// period is even while the scheduler has not caught up.
func periodAt(anchor time.Time, from int64, now time.Time) int64 {
	i := from
	for ; i < from+periodsSearchMax && !addMonths(anchor, i+1).After(now); i++ {
	}
	return i
}

// periodsSearchMax bounds periodAt's walk (a century of months).
const periodsSearchMax = 1200
