package autoscale_test

import (
	"fmt"
	"time"

	"github.com/moat-dev/moat/internal/autoscale"
)

// The integrator's loop: Step on every tick (metrics once per period),
// apply the actions in order, report what happened.
func Example() {
	c, err := autoscale.New(autoscale.Group{Name: "web", Min: 1, Max: 4, Desired: 2, LaunchTemplateVersion: "1",
		Subnets: []autoscale.Subnet{{ID: "app-a", Zone: "us-east-1a"}, {ID: "app-b", Zone: "us-east-1b"}}})
	if err != nil {
		panic(err)
	}
	now := time.Date(2026, 11, 28, 6, 10, 0, 0, time.UTC)
	for _, a := range c.Step(now, nil) {
		switch a.Kind {
		case autoscale.Launch:
			// start the instance in a.Subnet, then:
			c.InstanceRunning(a.InstanceID, now)
			fmt.Println("launch in", a.Zone)
		case autoscale.Terminate:
			// deregister, drain, stop, then:
			c.InstanceTerminated(a.InstanceID, now)
		}
	}
	fmt.Println(c.History()[1].Cause)
	// Output:
	// launch in us-east-1a
	// launch in us-east-1b
	// At 2026-11-28T06:10:00Z an instance was started in response to a difference between desired and actual capacity, increasing the capacity from 1 to 2.
}
