package daemon

import (
	"testing"
	"time"

	"github.com/moat-dev/moat/internal/api"
)

// TestSortByLaunchIsStableForEqualTimes: instances launched in one tick
// share their launch time; moat ps (and INDEX) must list them in one order.
func TestSortByLaunchIsStableForEqualTimes(t *testing.T) {
	t0 := time.Date(2026, 11, 28, 17, 4, 48, 0, time.UTC)
	for round := 0; round < 50; round++ {
		list := []api.Instance{
			{ID: "i-c", Launched: t0},
			{ID: "i-z", Launched: t0.Add(-time.Second)},
			{ID: "i-a", Launched: t0},
			{ID: "i-b", Launched: t0},
		}
		if round%2 == 1 {
			list[0], list[2] = list[2], list[0]
		}
		sortByLaunch(list)
		got := ""
		for _, in := range list {
			got += in.ID + " "
		}
		if want := "i-z i-a i-b i-c "; got != want {
			t.Fatalf("round %d: order %q, want %q", round, got, want)
		}
	}
}
