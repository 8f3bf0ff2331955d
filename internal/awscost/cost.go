// Package awscost estimates what a stack costs a month on AWS: the
// instances, NAT gateways, load balancers and public IPv4 addresses a plan
// deploys, at on-demand prices from a small table in prices.go (with the
// date they were taken). moat template --cost prints it, and moat deploy
// shows it before asking to go ahead.
package awscost

import (
	"fmt"
	"math"
	"slices"
	"sort"
	"strings"

	"github.com/moat-dev/moat/internal/plan"
)

// Line is one priced item of the estimate.
type Line struct {
	What   string  `json:"what"`   // e.g. "EC2 t3.micro (group web)"
	Count  int     `json:"count"`  // how many run
	Hourly float64 `json:"hourly"` // price of one, per hour
	// Monthly is Count × Hourly × HoursPerMonth.
	Monthly float64 `json:"monthly"`
	// Note says what the line leaves out or how it can grow.
	Note string `json:"note,omitempty"`
}

// Estimate is a stack's monthly cost.
type Estimate struct {
	Region   string  `json:"region"`
	PricesOf string  `json:"pricesOf"`
	Hours    int     `json:"hoursPerMonth"`
	Lines    []Line  `json:"lines"`
	Monthly  float64 `json:"monthly"`
	// AtMax is the monthly cost with every auto scaling group at its
	// maximum size.
	AtMax float64 `json:"atMax"`
	// Unpriced are instance types the table has no price for; the totals
	// leave them out.
	Unpriced []string `json:"unpriced,omitempty"`
}

// Excludes says what the estimate does not count.
const Excludes = "data transfer, NAT gateway per-GB processing, load balancer LCUs, EBS volumes and CloudWatch alarms"

// Regions lists the regions the price table has.
func Regions() []string {
	var out []string
	for r := range prices {
		out = append(out, r)
	}
	sort.Strings(out)
	return out
}

// InstanceHourly is an instance type's on-demand hourly price in a region;
// ok is false when the table has none.
func InstanceHourly(region, instanceType string) (float64, bool) {
	rp, ok := prices[region]
	if !ok {
		return 0, false
	}
	family, size, _ := strings.Cut(instanceType, ".")
	large, ok := rp.large[family]
	if !ok || !slices.Contains(familySizes[family], size) {
		return 0, false
	}
	return large * sizeFactor[size], true
}

// Monthly estimates the plan's monthly cost in its region (aws.region).
func Monthly(p *plan.Plan) (Estimate, error) {
	region := p.AWS.Region
	rp, ok := prices[region]
	if !ok {
		return Estimate{}, fmt.Errorf("estimate cost: moat's price table has no prices for region %s (it has %s)", region, strings.Join(Regions(), ", "))
	}
	e := Estimate{Region: region, PricesOf: PricesOf, Hours: HoursPerMonth}
	add := func(what string, n int, hourly float64, note string) {
		if n == 0 {
			return
		}
		e.Lines = append(e.Lines, Line{What: what, Count: n, Hourly: hourly, Monthly: float64(n) * hourly * HoursPerMonth, Note: note})
	}
	atMax := 0.0
	unpriced := map[string]bool{}
	instances := func(what, typ string, n, max int) {
		h, ok := InstanceHourly(region, typ)
		if !ok {
			unpriced[typ] = true
			return
		}
		note := ""
		if max > n {
			note = fmt.Sprintf("up to %d: %s", max, dollars(float64(max)*h*HoursPerMonth))
		}
		add(fmt.Sprintf("EC2 %s (%s)", typ, what), n, h, note)
		atMax += float64(max-n) * h * HoursPerMonth
	}
	public := 0
	if b := p.Bastion; b != nil {
		instances("bastion", b.InstanceType, 1, 1)
		public++
	}
	for _, g := range p.AutoScalingGroups {
		typ := ""
		for _, lt := range p.LaunchTemplates {
			if lt.Name == g.LaunchTemplate {
				typ = lt.AWSInstanceType
			}
		}
		instances("group "+g.Name, typ, g.DesiredCapacity, g.MaxSize)
	}
	add("NAT gateway", len(p.NATGateways), rp.nat, fmt.Sprintf("plus about $%.3f per GB it processes", natPerGB))
	public += len(p.NATGateways)
	add("application load balancer", len(p.LoadBalancers), rp.alb, "plus LCUs (traffic)")
	for _, lb := range p.LoadBalancers {
		public += len(lb.Nodes) // one public address per zone, at least
	}
	add("public IPv4 address", public, publicIPv4, "the bastion, NAT gateways, one per load balancer zone")
	for _, l := range e.Lines {
		e.Monthly += l.Monthly
	}
	e.AtMax = e.Monthly + atMax
	for t := range unpriced {
		e.Unpriced = append(e.Unpriced, t)
	}
	sort.Strings(e.Unpriced)
	return e, nil
}

// dollars rounds to cents.
func dollars(v float64) string {
	return fmt.Sprintf("$%.2f", math.Round(v*100)/100)
}

// Summary is the one-line estimate, e.g. "~$87/month (prices of 2025-06,
// on-demand, 730 h; excludes ...)".
func (e Estimate) Summary() string {
	s := fmt.Sprintf("~$%.0f/month in %s (prices of %s, on-demand, %d h; excludes %s", e.Monthly, e.Region, e.PricesOf, e.Hours, Excludes)
	if len(e.Unpriced) > 0 {
		s += "; and " + strings.Join(e.Unpriced, ", ") + ", which moat's price table lacks"
	}
	s += ")"
	if e.AtMax > e.Monthly+0.005 {
		s += fmt.Sprintf("; up to ~$%.0f/month with every group at its maximum size", e.AtMax)
	}
	return s
}

// Table is the estimate line by line, then the summary.
func (e Estimate) Table() string {
	var b strings.Builder
	w := 0
	for _, l := range e.Lines {
		w = max(w, len(l.What))
	}
	for _, l := range e.Lines {
		fmt.Fprintf(&b, "%-*s  %3d × $%.4f/h  %10s/month", w, l.What, l.Count, l.Hourly, dollars(l.Monthly))
		if l.Note != "" {
			fmt.Fprintf(&b, "  (%s)", l.Note)
		}
		b.WriteByte('\n')
	}
	b.WriteString(e.Summary())
	b.WriteByte('\n')
	return b.String()
}
