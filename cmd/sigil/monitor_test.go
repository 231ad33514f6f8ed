package main

import (
	"testing"
	"time"
)

func TestDayDuration(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want time.Duration
		ok   bool
	}{
		{"7d", 7 * 24 * time.Hour, true},
		{"36h", 36 * time.Hour, true},
		{"1d12h", 36 * time.Hour, true},
		{"", 0, false},
		{"0d", 0, false},
		{"-1d", 0, false},
		{"7d,1d", 0, false},
		{"bogus", 0, false},
	} {
		var d dayDuration
		err := d.Set(tc.in)
		if (err == nil) != tc.ok || tc.ok && time.Duration(d) != tc.want {
			t.Errorf("Set(%q) = %v, %v; want %v (ok %v)", tc.in, time.Duration(d), err, tc.want, tc.ok)
		}
	}
	d := dayDuration(7 * 24 * time.Hour)
	if d.String() != "7d" {
		t.Errorf("String() = %q", d.String())
	}
}
