package instance

import (
	"slices"
	"testing"
)

func TestOrphanCgroups(t *testing.T) {
	live := func(id string) bool { return id == "i-0aaa" }
	for _, tc := range []struct {
		names []string
		want  []string
	}{
		{nil, nil},
		{[]string{"moat-i-0aaa"}, nil},
		{[]string{"moat-i-0aaa", "moat-i-0bbb"}, []string{"moat-i-0bbb"}},
		// Not an instance's cgroup: left alone.
		{[]string{"user.slice", "moat-", "moat-i-", "moat-lb", "i-0bbb", "xmoat-i-0bbb"}, nil},
	} {
		if got := orphanCgroups(tc.names, live); !slices.Equal(got, tc.want) {
			t.Errorf("orphanCgroups(%q) = %q, want %q", tc.names, got, tc.want)
		}
	}
}
