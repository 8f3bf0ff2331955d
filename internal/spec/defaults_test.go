package spec

import (
	"reflect"
	"testing"
)

func TestCarveSubnets(t *testing.T) {
	for _, c := range []struct {
		cidr  string
		zones []string
		want  []string // CIDRs, public then private
	}{
		{"10.0.0.0/16", []string{"a", "b"}, []string{"10.0.0.0/24", "10.0.1.0/24", "10.0.128.0/24", "10.0.129.0/24"}},
		{"10.0.0.0/26", []string{"a", "b"}, []string{"10.0.0.0/28", "10.0.0.16/28", "10.0.0.32/28", "10.0.0.48/28"}},
		{"10.0.0.0/27", []string{"a"}, []string{"10.0.0.0/28", "10.0.0.16/28"}},
		{"10.0.0.0/27", []string{"a", "b"}, nil}, // two blocks for four subnets
		{"10.0.0.0/28", []string{"a"}, nil},      // cannot be split (AWS's smallest subnet)
		{"10.0.0.0/30", []string{"a"}, nil},      // found by FuzzParse: negative shift
		{"10.0.0.0/32", []string{"a"}, nil},
		{"10.0.0.0/16", nil, nil},
		{"nonsense", []string{"a"}, nil},
		{"::/64", []string{"a"}, nil},
	} {
		var got []string
		for _, s := range CarveSubnets(c.cidr, c.zones) {
			got = append(got, s.CIDR)
		}
		if !reflect.DeepEqual(got, c.want) {
			t.Errorf("CarveSubnets(%s, %v) = %v, want %v", c.cidr, c.zones, got, c.want)
		}
	}
}
