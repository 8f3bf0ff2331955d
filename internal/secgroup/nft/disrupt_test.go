package nft

import (
	"reflect"
	"strings"
	"testing"
)

// TestGoldenFaultTables: a disrupt-connectivity table (scope all for one
// subnet, availability-zone for another) and a latency-and-loss table,
// without root, against testdata/fault-*.json; their deletion removes
// both families' tables in one commit, and only moat's tables are
// touched.
func TestGoldenFaultTables(t *testing.T) {
	var r recorder
	if err := AddDisruption(&r, "moat-fis-f-1", []Disruption{
		{Subnet: "private-a", Bridge: "br-private-a"},
		{Subnet: "public-a", Bridge: "br-public-a", Peers: []string{"public-b", "private-b"}, PeerBridges: []string{"br-public-b", "br-private-b"}},
	}); err != nil {
		t.Fatal(err)
	}
	goldenOps(t, "fault-disrupt", r.ops)

	r = recorder{}
	if err := AddDegradation(&r, "moat-fis-f-2", Degradation{Device: "eth0", LossPerMyriad: 750, Delay: true, Queue: 7}); err != nil {
		t.Fatal(err)
	}
	goldenOps(t, "fault-degrade", r.ops)

	r = recorder{}
	if err := DeleteDisruption(&r, "moat-fis-f-1"); err != nil {
		t.Fatal(err)
	}
	want := []op{{Op: "add table", Name: "inet moat-fis-f-1"}, {Op: "delete table", Name: "inet moat-fis-f-1"},
		{Op: "add table", Name: "ip moat-fis-f-1"}, {Op: "delete table", Name: "ip moat-fis-f-1"}, {Op: "commit"}}
	if !reflect.DeepEqual(r.ops, want) {
		t.Errorf("delete: %+v, want %+v", r.ops, want)
	}
	for _, err := range []error{
		AddDisruption(&recorder{}, "moat", nil),
		AddDegradation(&recorder{}, "filter", Degradation{}),
		DeleteDisruption(&recorder{}, "moat-nacl"),
	} {
		if err == nil || !strings.Contains(err.Error(), "is not one of moat's (moat-fis-…)") {
			t.Errorf("a table that is not a fault's: %v", err)
		}
	}
}
