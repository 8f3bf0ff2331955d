package awscost

import (
	"math"
	"strings"
	"testing"

	"github.com/moat-dev/moat/internal/plan"
	"github.com/moat-dev/moat/internal/spec"
)

func TestInstanceHourly(t *testing.T) {
	for _, c := range []struct {
		region, typ string
		want        float64 // 0: no price
	}{
		{"us-east-1", "t3.micro", 0.0104},
		{"us-east-1", "t3.nano", 0.0052},
		{"us-east-1", "t3.2xlarge", 0.3328},
		{"us-east-1", "t4g.small", 0.0168},
		{"us-east-1", "m5.large", 0.096},
		{"us-east-1", "m5.xlarge", 0.192},
		{"us-east-1", "m7g.medium", 0.0408},
		{"us-east-1", "m7g.large", 0.0816},
		{"us-east-1", "c5.2xlarge", 0.34},
		{"us-west-2", "t3.micro", 0.0104},
		{"eu-west-1", "t3.micro", 0.0114},
		{"eu-central-1", "t4g.micro", 0.0096},
		{"eu-central-1", "m5.large", 0.115},
		{"ap-northeast-1", "t3.micro", 0.0136},
		{"ap-northeast-1", "c5.large", 0.107},
		{"us-east-1", "m5.micro", 0},  // m5 has no micro
		{"us-east-1", "c5.medium", 0}, // nor c5 a medium
		{"us-east-1", "t3a.micro", 0}, // not in the table
		{"sa-east-1", "t3.micro", 0},  // nor the region
	} {
		got, ok := InstanceHourly(c.region, c.typ)
		if ok != (c.want != 0) || math.Abs(got-c.want) > 1e-9 {
			t.Errorf("InstanceHourly(%s, %s) = %v, %v; want %v", c.region, c.typ, got, ok, c.want)
		}
	}
}

// example is the bundled example's plan.
func example(t *testing.T) *plan.Plan {
	t.Helper()
	f, err := spec.LoadFile("../../examples/realtime/moat.yaml")
	if err != nil {
		t.Fatal(err)
	}
	p, ps := plan.Build(f)
	if p == nil {
		t.Fatal(ps)
	}
	return p
}

func TestMonthly(t *testing.T) {
	h := float64(HoursPerMonth)
	for _, c := range []struct {
		name  string
		edit  func(p *plan.Plan)
		want  float64
		atMax float64
		lines []string
	}{
		// Bastion t3.micro, 2 (up to 6) t3.micro, one NAT, one load balancer
		// in two zones, public addresses: bastion, NAT, 2 load balancer nodes.
		{"example", func(*plan.Plan) {},
			(0.0104 + 2*0.0104 + 0.045 + 0.0225 + 4*0.005) * h, (0.0104 + 6*0.0104 + 0.045 + 0.0225 + 4*0.005) * h,
			[]string{"EC2 t3.micro (bastion)", "EC2 t3.micro (group web)", "NAT gateway", "application load balancer", "public IPv4 address"}},
		{"graviton in Tokyo", func(p *plan.Plan) {
			p.AWS.Region = "ap-northeast-1"
			p.LaunchTemplates[0].AWSInstanceType = "t4g.small"
		}, (0.0136 + 2*0.0216 + 0.062 + 0.0243 + 4*0.005) * h, (0.0136 + 6*0.0216 + 0.062 + 0.0243 + 4*0.005) * h, nil},
		{"no NAT, no bastion", func(p *plan.Plan) {
			p.NATGateways, p.Bastion = nil, nil
		}, (2*0.0104 + 0.0225 + 2*0.005) * h, (6*0.0104 + 0.0225 + 2*0.005) * h, nil},
		{"three NATs", func(p *plan.Plan) {
			p.NATGateways = append(p.NATGateways, p.NATGateways[0], p.NATGateways[0])
		}, (0.0104 + 2*0.0104 + 3*0.045 + 0.0225 + 6*0.005) * h, (0.0104 + 6*0.0104 + 3*0.045 + 0.0225 + 6*0.005) * h, nil},
	} {
		p := example(t)
		c.edit(p)
		e, err := Monthly(p)
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if math.Abs(e.Monthly-c.want) > 1e-6 || math.Abs(e.AtMax-c.atMax) > 1e-6 {
			t.Errorf("%s: $%.4f (at max $%.4f), want $%.4f (at max $%.4f)\n%s", c.name, e.Monthly, e.AtMax, c.want, c.atMax, e.Table())
		}
		for i, w := range c.lines {
			if i >= len(e.Lines) || e.Lines[i].What != w {
				t.Errorf("%s: line %d is %+v, want %q", c.name, i, e.Lines, w)
			}
		}
	}
}

func TestSummary(t *testing.T) {
	e, err := Monthly(example(t))
	if err != nil {
		t.Fatal(err)
	}
	want := "~$87/month in us-east-1 (prices of " + PricesOf + ", on-demand, 730 h; excludes data transfer, NAT gateway per-GB processing, load balancer LCUs, EBS volumes and CloudWatch alarms); up to ~$117/month with every group at its maximum size"
	if got := e.Summary(); got != want {
		t.Errorf("summary\n got %q\nwant %q", got, want)
	}
	if tab := e.Table(); !strings.Contains(tab, "EC2 t3.micro (group web)     2 × $0.0104/h      $15.18/month  (up to 6: $45.55)") {
		t.Errorf("table:\n%s", tab)
	}
}

func TestUnpricedAndUnknownRegion(t *testing.T) {
	p := example(t)
	p.LaunchTemplates[0].AWSInstanceType = "t3a.micro"
	e, err := Monthly(p)
	if err != nil {
		t.Fatal(err)
	}
	if len(e.Unpriced) != 1 || e.Unpriced[0] != "t3a.micro" || !strings.Contains(e.Summary(), "and t3a.micro, which moat's price table lacks") {
		t.Errorf("unpriced %v, summary %q", e.Unpriced, e.Summary())
	}
	p.AWS.Region = "sa-east-1"
	if _, err := Monthly(p); err == nil || !strings.Contains(err.Error(), "no prices for region sa-east-1 (it has ap-northeast-1, eu-central-1, eu-west-1, us-east-1, us-west-2)") {
		t.Errorf("unknown region: %v", err)
	}
}
