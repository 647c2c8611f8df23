package domain

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Day is the unit retention is usually stated in ("400d").
const Day = 24 * time.Hour

// Retention is how long a region keeps its events, counted from when they
// occurred. Events leave a read model only a whole calendar month (UTC) at a
// time, once the last instant of the month is older than Period, so an event
// is kept at least Period and at most Period plus a month.
type Retention struct {
	// Period is how long events are kept after they occurred; 0 keeps them
	// for ever.
	Period time.Duration
	// Floor is the shortest Period the service accepts: a guard against a
	// typo ("40d" for "400d", "400h") deleting most of a region's history,
	// which nothing can bring back.
	Floor time.Duration
}

// Forever reports whether nothing ever expires.
func (r Retention) Forever() bool { return r.Period <= 0 }

// Check refuses a Period below the Floor.
func (r Retention) Check() error {
	if r.Period < 0 || r.Floor < 0 {
		return errors.New("retention and its floor may not be negative")
	}
	if !r.Forever() && r.Period < r.Floor {
		return fmt.Errorf("retention %s is below the floor of %s", FormatPeriod(r.Period), FormatPeriod(r.Floor))
	}
	return nil
}

// Horizon is the first instant of the oldest month kept at now: every month
// that ends at or before it is entirely older than Period, and the month
// that starts at it is at least partly inside Period, so it is kept whole.
// It is the zero time when nothing expires.
func (r Retention) Horizon(now time.Time) time.Time {
	if r.Forever() {
		return time.Time{}
	}
	t := now.UTC().Add(-r.Period)
	return time.Date(t.Year(), t.Month(), 1, 0, 0, 0, 0, time.UTC)
}

// ParsePeriod reads a retention period: whole days ("400d"), a Go duration
// ("9600h"), or "0" or "forever" for no limit. Days are how retention is
// stated in policies; durations are what the other flags take.
func ParsePeriod(s string) (time.Duration, error) {
	s = strings.TrimSpace(s)
	switch strings.ToLower(s) {
	case "0", "forever":
		return 0, nil
	}
	if days, ok := strings.CutSuffix(s, "d"); ok {
		n, err := strconv.ParseInt(days, 10, 32)
		if err != nil || n < 0 {
			return 0, fmt.Errorf("retention period %q: days must be a whole number, e.g. 400d", s)
		}
		return time.Duration(n) * Day, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, fmt.Errorf("retention period %q: want days (400d), a duration (9600h) or forever", s)
	}
	if d < 0 {
		return 0, fmt.Errorf("retention period %q is negative", s)
	}
	return d, nil
}

// FormatPeriod writes d the way ParsePeriod reads it, in days when it is a
// whole number of them.
func FormatPeriod(d time.Duration) string {
	if d <= 0 {
		return "forever"
	}
	if d%Day == 0 {
		return strconv.FormatInt(int64(d/Day), 10) + "d"
	}
	return d.String()
}
