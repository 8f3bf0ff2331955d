package fis

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// ParseDuration reads an ISO 8601 duration as FIS takes them: PT30M,
// PT1H30M, PT90S, PT0.5S, P1D, P1DT2H. Years, months and weeks are not
// accepted (their length varies).
func ParseDuration(s string) (time.Duration, error) {
	rest, ok := strings.CutPrefix(strings.ToUpper(s), "P")
	if !ok || rest == "" || rest == "T" {
		return 0, fmt.Errorf("%q is not an ISO 8601 duration such as PT5M, PT30S or PT1H30M", s)
	}
	var total float64
	inTime := false
	units := "D"
	for rest != "" {
		if rest[0] == 'T' {
			if inTime {
				return 0, fmt.Errorf("%q: T appears twice", s)
			}
			inTime, units, rest = true, "HMS", rest[1:]
			if rest == "" {
				return 0, fmt.Errorf("%q: nothing after T", s)
			}
			continue
		}
		i := strings.IndexFunc(rest, func(r rune) bool { return (r < '0' || r > '9') && r != '.' && r != ',' })
		if i <= 0 {
			return 0, fmt.Errorf("%q is not an ISO 8601 duration such as PT5M, PT30S or PT1H30M", s)
		}
		n, err := strconv.ParseFloat(strings.Replace(rest[:i], ",", ".", 1), 64)
		if err != nil {
			return 0, fmt.Errorf("%q: %q is not a number", s, rest[:i])
		}
		u := rest[i]
		j := strings.IndexByte(units, u)
		if j < 0 {
			if !inTime && strings.IndexByte("HS", u) >= 0 {
				return 0, fmt.Errorf("%q: hours, minutes and seconds come after T (PT%s)", s, rest)
			}
			if u == 'Y' || u == 'W' || (u == 'M' && !inTime) {
				return 0, fmt.Errorf("%q: years, months and weeks are not accepted; use days (P1D) or hours (PT12H)", s)
			}
			return 0, fmt.Errorf("%q: unit %q out of place", s, string(u))
		}
		units = units[j+1:]
		switch u {
		case 'D':
			total += n * 86400
		case 'H':
			total += n * 3600
		case 'M':
			total += n * 60
		case 'S':
			total += n
		}
		rest = rest[i+1:]
	}
	return time.Duration(total * float64(time.Second)), nil
}

// FormatDuration writes d as ISO 8601 (PT1H2M3S; PT0S for zero).
func FormatDuration(d time.Duration) string {
	if d <= 0 {
		return "PT0S"
	}
	var b strings.Builder
	b.WriteString("PT")
	if h := d / time.Hour; h > 0 {
		fmt.Fprintf(&b, "%dH", h)
		d -= h * time.Hour
	}
	if m := d / time.Minute; m > 0 {
		fmt.Fprintf(&b, "%dM", m)
		d -= m * time.Minute
	}
	if d > 0 {
		b.WriteString(strconv.FormatFloat(d.Seconds(), 'f', -1, 64))
		b.WriteString("S")
	}
	return b.String()
}
