package ec2facts

import (
	"slices"
	"testing"
)

func TestZones(t *testing.T) {
	for _, c := range []struct {
		region, zone string
		want         bool
	}{
		{"us-east-1", "a", true},
		{"us-east-1", "f", true},
		{"us-east-1", "g", false},
		{"us-east-1", "us-east-1f", true},
		{"us-east-1", "us-east-1g", false},
		{"ap-northeast-1", "a", true},
		{"ap-northeast-1", "b", false}, // EC2: "Subnets can currently only be created in … ap-northeast-1a, ap-northeast-1c, ap-northeast-1d"
		{"ap-northeast-1", "c", true},
		{"ap-northeast-1", "d", true},
		{"ap-northeast-1", "ap-northeast-1b", false},
		{"ca-central-1", "c", false},
		{"ca-central-1", "d", true},
		{"us-west-2", "d", true},
		{"us-west-2", "e", false},
		{"eu-west-1", "c", true},
		{"eu-west-1", "d", false},
		{"eu-central-1", "c", true},
		{"eu-central-1", "d", false},
		{"us-east-2", "d", false},
		{"xx-nowhere-1", "q", true}, // unknown regions are not judged here
	} {
		if got := HasZone(c.region, c.zone); got != c.want {
			t.Errorf("HasZone(%q, %q) = %v, want %v", c.region, c.zone, got, c.want)
		}
	}
	if l, ok := ZoneLetters("ap-northeast-1"); !ok || !slices.Equal(l, []string{"a", "c", "d"}) {
		t.Errorf("ZoneLetters(ap-northeast-1) = %v, %v", l, ok)
	}
	if _, ok := ZoneLetters("us-east-9"); ok {
		t.Error("ZoneLetters knows us-east-9")
	}
	for region, letters := range zoneLetters {
		if len(letters) < 2 {
			t.Errorf("%s has %d zones; a load balancer needs two", region, len(letters))
		}
	}
}
