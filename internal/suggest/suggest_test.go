package suggest

import "testing"

func TestDistance(t *testing.T) {
	for _, tc := range []struct {
		a, b string
		want int
	}{
		{"", "", 0}, {"abc", "", 3}, {"", "abc", 3}, {"kitten", "sitting", 3},
		{"web", "web", 0}, {"wbe", "web", 2}, {"flaw", "lawn", 2},
	} {
		if got := Distance(tc.a, tc.b); got != tc.want {
			t.Errorf("Distance(%q, %q) = %d, want %d", tc.a, tc.b, got, tc.want)
		}
	}
}

func TestClosest(t *testing.T) {
	for _, tc := range []struct {
		s          string
		candidates []string
		want       string
	}{
		{"wbe", []string{"app", "web"}, "web"},
		{"WEB", []string{"web"}, "web"},     // case is ignored
		{"xyz", []string{"web", "app"}, ""}, // 3 edits from both: too far for 3 letters
		{"InstanceTyp", []string{"ImageId", "InstanceType"}, "InstanceType"},
		{"helthcheckpath", []string{"HealthCheckPath"}, "HealthCheckPath"},
		{"abcdefghijkl", []string{"abcdefghxxxx"}, "abcdefghxxxx"}, // 4 edits of 12 letters: the most allowed
		{"abcdefghijkl", []string{"abcdefgxxxxx"}, ""},
		{"ab", []string{"ba", "ab2"}, "ab2"},   // nearest wins
		{"web", []string{"wab", "wob"}, "wab"}, // of equals, the first
		{"web", nil, ""},
	} {
		if got := Closest(tc.s, tc.candidates); got != tc.want {
			t.Errorf("Closest(%q, %q) = %q, want %q", tc.s, tc.candidates, got, tc.want)
		}
	}
}
