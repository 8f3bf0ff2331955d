package awscfn

import (
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/moat-dev/moat/internal/plan"
	"github.com/moat-dev/moat/internal/spec"
)

// find returns the resource with the id, failing the test if it is absent.
func find(t *testing.T, tpl *Template, id string) *Resource {
	t.Helper()
	for i := range tpl.Resources {
		if tpl.Resources[i].ID == id {
			return &tpl.Resources[i]
		}
	}
	t.Fatalf("no resource %s", id)
	return nil
}

func props(t *testing.T, tpl *Template, id string) map[string]any {
	return find(t, tpl, id).Properties
}

// TestValidateFindsBreakage breaks a rendered template one way at a time
// and expects the finding that says where and what.
func TestValidateFindsBreakage(t *testing.T) {
	cases := []struct {
		name        string
		file        string
		breakIt     func(t *testing.T, tpl *Template)
		path, msg   string
		parsedAlike bool // also found after a JSON round trip
	}{
		{
			name: "dangling Ref",
			breakIt: func(t *testing.T, tpl *Template) {
				props(t, tpl, "SubnetPublicA")["VpcId"] = ref("VPCTypo")
			},
			path: "SubnetPublicA.Properties.VpcId", msg: "Ref to VPCTypo, which is not a resource, parameter or pseudo parameter",
		},
		{
			name: "dangling Sub variable",
			breakIt: func(t *testing.T, tpl *Template) {
				props(t, tpl, "VPC")["Tags"] = tags("${Nope}")
			},
			path: "VPC.Properties.Tags[0].Value.Fn::Sub", msg: "Ref to Nope",
		},
		{
			name: "GetAtt of an attribute the type lacks",
			breakIt: func(t *testing.T, tpl *Template) {
				tpl.Outputs[0].Value = getAtt("LoadBalancerWeb", "DnsName")
			},
			path: "Outputs.LoadBalancerWebDNSName.Value", msg: "AWS::ElasticLoadBalancingV2::LoadBalancer has no attribute DnsName",
		},
		{
			name: "dependency cycle",
			breakIt: func(t *testing.T, tpl *Template) {
				// The VPC waits for its own subnet.
				find(t, tpl, "VPC").DependsOn = []string{"SubnetPrivateB"}
			},
			path: "SubnetPrivateB", msg: "dependency cycle: SubnetPrivateB -> VPC -> SubnetPrivateB",
		},
		{
			name: "unknown property",
			breakIt: func(t *testing.T, tpl *Template) {
				props(t, tpl, "TargetGroupWeb")["HealthCheckPaht"] = "/health"
			},
			path: "TargetGroupWeb.Properties.HealthCheckPaht", msg: "unknown property (did you mean HealthCheckPath?)",
		},
		{
			name: "missing required property",
			breakIt: func(t *testing.T, tpl *Template) {
				delete(props(t, tpl, "AutoScalingGroupWeb"), "MaxSize")
			},
			path: "AutoScalingGroupWeb.Properties.MaxSize", msg: "required property is missing",
		},
		{
			name: "missing required nested property",
			breakIt: func(t *testing.T, tpl *Template) {
				acts := props(t, tpl, "LoadBalancerWebListener80")["DefaultActions"].([]any)
				delete(acts[0].(map[string]any), "Type")
			},
			path: "LoadBalancerWebListener80.Properties.DefaultActions[0].Type", msg: "required property is missing",
		},
		{
			name: "value outside the enum",
			breakIt: func(t *testing.T, tpl *Template) {
				props(t, tpl, "AutoScalingGroupWebPolicyRequestsPerTarget")["PolicyType"] = "TargetTracking"
			},
			path: "AutoScalingGroupWebPolicyRequestsPerTarget.Properties.PolicyType", msg: `value "TargetTracking" is not one of`,
		},
		{
			name: "wrong type",
			breakIt: func(t *testing.T, tpl *Template) {
				props(t, tpl, "TargetGroupWeb")["HealthCheckIntervalSeconds"] = "five"
			},
			path: "TargetGroupWeb.Properties.HealthCheckIntervalSeconds", msg: "is a string, want integer",
		},
		{
			name: "below the minimum",
			breakIt: func(t *testing.T, tpl *Template) {
				props(t, tpl, "TargetGroupWeb")["HealthyThresholdCount"] = 1
			},
			path: "TargetGroupWeb.Properties.HealthyThresholdCount", msg: "below the minimum 2",
		},
		{
			name: "not a CIDR block",
			breakIt: func(t *testing.T, tpl *Template) {
				props(t, tpl, "VPC")["CidrBlock"] = "10.0.0.0/33"
			},
			path: "VPC.Properties.CidrBlock", msg: `value "10.0.0.0/33" is not an IPv4 CIDR block`,
		},
		{
			name: "read-only property set",
			breakIt: func(t *testing.T, tpl *Template) {
				props(t, tpl, "VPC")["VpcId"] = "vpc-123"
			},
			path: "VPC.Properties.VpcId", msg: "is read-only",
		},
		{
			name: "unknown resource type",
			breakIt: func(t *testing.T, tpl *Template) {
				find(t, tpl, "InternetGateway").Type = "AWS::EC2::InternetGateWay"
			},
			path: "InternetGateway.Type", msg: "has no vendored schema",
		},
		{
			name: "subnet outside the VPC",
			breakIt: func(t *testing.T, tpl *Template) {
				props(t, tpl, "SubnetPrivateB")["CidrBlock"] = "10.1.129.0/24"
			},
			path: "SubnetPrivateB.Properties.CidrBlock", msg: "subnet 10.1.129.0/24 is not inside VPC VPC's 10.0.0.0/16",
		},
		{
			name: "overlapping subnets",
			breakIt: func(t *testing.T, tpl *Template) {
				props(t, tpl, "SubnetPrivateB")["CidrBlock"] = "10.0.0.128/25"
			},
			path: "SubnetPublicA.Properties.CidrBlock", msg: "overlaps SubnetPrivateB's 10.0.0.128/25",
		},
		{
			name: "load balancer in one zone",
			breakIt: func(t *testing.T, tpl *Template) {
				props(t, tpl, "LoadBalancerWeb")["Subnets"] = []any{ref("SubnetPublicA")}
			},
			path: "LoadBalancerWeb.Properties.Subnets", msg: "needs subnets in at least two zones; it has 1",
		},
		{
			name: "load balancer in a private subnet",
			breakIt: func(t *testing.T, tpl *Template) {
				props(t, tpl, "LoadBalancerWeb")["Subnets"] = []any{ref("SubnetPublicA"), ref("SubnetPrivateB")}
			},
			path: "LoadBalancerWeb.Properties.Subnets[1]", msg: "SubnetPrivateB, which is not a public subnet",
		},
		{
			name: "zone without a public subnet",
			breakIt: func(t *testing.T, tpl *Template) {
				props(t, tpl, "SubnetPublicBRouteTableAssociation")["RouteTableId"] = ref("RouteTablePrivateB")
			},
			path: "SubnetPrivateB.Properties.AvailabilityZone", msg: "zone us-east-1b has no public subnet (one routed to an internet gateway); it has only SubnetPrivateB, SubnetPublicB",
		},
		{
			name: "zone without a private subnet",
			breakIt: func(t *testing.T, tpl *Template) {
				props(t, tpl, "SubnetPrivateA")["AvailabilityZone"] = "us-east-1b"
				props(t, tpl, "SubnetPrivateA")["CidrBlock"] = "10.0.130.0/24"
				// zone a keeps only its public subnet
			},
			path: "SubnetPublicA.Properties.AvailabilityZone", msg: "zone us-east-1a has no private subnet",
		},
		{
			name: "instances do not admit the load balancer",
			breakIt: func(t *testing.T, tpl *Template) {
				props(t, tpl, "SecurityGroupAppIngressFromLbTcp8000")["FromPort"] = 8080
				props(t, tpl, "SecurityGroupAppIngressFromLbTcp8000")["ToPort"] = 8080
			},
			path: "AutoScalingGroupWeb.Properties.TargetGroupARNs[0]",
			msg:  "do not admit load balancer LoadBalancerWeb's group SecurityGroupLb on tcp/8000 (target group TargetGroupWeb)",
		},
		{
			name: "health check port not admitted",
			breakIt: func(t *testing.T, tpl *Template) {
				props(t, tpl, "TargetGroupWeb")["HealthCheckPort"] = "9000"
			},
			path: "AutoScalingGroupWeb.Properties.TargetGroupARNs[0]", msg: "on tcp/9000",
		},
		{
			name: "request count policy created before the listener",
			breakIt: func(t *testing.T, tpl *Template) {
				find(t, tpl, "AutoScalingGroupWeb").DependsOn = []string{"RouteTablePrivateANatRoute"}
			},
			path: "AutoScalingGroupWebPolicyRequestsPerTarget.DependsOn", msg: "depends on none of LoadBalancerWebListener80",
		},
		{
			name: "request count label with no listener between the pair",
			breakIt: func(t *testing.T, tpl *Template) {
				acts := props(t, tpl, "LoadBalancerWebListener80")["DefaultActions"].([]any)
				acts[0] = map[string]any{"Type": "fixed-response", "FixedResponseConfig": map[string]any{"StatusCode": "503"}}
			},
			path: "AutoScalingGroupWebPolicyRequestsPerTarget.Properties.TargetTrackingConfiguration.PredefinedMetricSpecification.ResourceLabel",
			msg:  "no listener of LoadBalancerWeb forwards to TargetGroupWeb",
		},
		{
			name: "bad output name",
			breakIt: func(t *testing.T, tpl *Template) {
				tpl.Outputs[0].Name = "Load-Balancer"
			},
			path: `Outputs["Load-Balancer"]`, msg: "output name must be 1-255 letters and digits",
		},
		{
			name: "step scaling alarm with a dangling action (three zones)",
			file: stacks[1].file,
			breakIt: func(t *testing.T, tpl *Template) {
				props(t, tpl, "AutoScalingGroupWebPolicyCpuBurstAlarm")["AlarmActions"] = []any{ref("AutoScalingGroupWebPolicyCpuBurstt")}
			},
			path: "AutoScalingGroupWebPolicyCpuBurstAlarm.Properties.AlarmActions[0]", msg: "Ref to AutoScalingGroupWebPolicyCpuBurstt",
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			file := c.file
			if file == "" {
				file = stacks[0].file
			}
			tpl := renderFile(t, file, Options{})
			c.breakIt(t, tpl)
			check := func(label string, fs []Finding) {
				t.Helper()
				for _, f := range fs {
					if f.Path == c.path && strings.Contains(f.Message, c.msg) {
						return
					}
				}
				t.Errorf("%s: no finding %s: %s...; got:\n%s", label, c.path, c.msg, findings(fs))
			}
			check("rendered", Validate(tpl))
			// The same breakage is found in the template read back from JSON.
			parsed, err := ParseJSON(mustJSON(t, tpl))
			if err != nil {
				t.Fatal(err)
			}
			check("parsed", Validate(parsed))
		})
	}
}

// TestValidateOnlyTheBreakage: one breakage yields findings about it only,
// not a cascade.
func TestValidateOnlyTheBreakage(t *testing.T) {
	tpl := renderFile(t, stacks[0].file, Options{})
	delete(props(t, tpl, "AutoScalingGroupWeb"), "MaxSize")
	fs := Validate(tpl)
	if len(fs) != 1 {
		t.Errorf("got %d findings, want 1:\n%s", len(fs), findings(fs))
	}
}

func TestSubVars(t *testing.T) {
	got := subVars("a ${X} ${!Literal} ${Y.Attr} ${ AWS::Region }")
	want := []string{"X", "Y.Attr", "AWS::Region"}
	if strings.Join(got, ",") != strings.Join(want, ",") {
		t.Errorf("subVars = %v, want %v", got, want)
	}
}

func TestCamel(t *testing.T) {
	for in, want := range map[string]string{"private-a": "PrivateA", "nat_b": "NatB", "web": "Web", "requests-per-target": "RequestsPerTarget", "a1-b2": "A1B2"} {
		if got := camel(in); got != want {
			t.Errorf("camel(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestEveryListenerFeatureValidates renders what the goldens do not cover
// — an HTTPS listener, weighted forwarding, every rule condition, app
// cookie stickiness, a second target group, no bastion, a plain image id —
// and checks it against the schemas and rules with zero findings.
func TestEveryListenerFeatureValidates(t *testing.T) {
	p := featurePlan(t)
	tpl, err := Render(p, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if fs := Validate(tpl); len(fs) > 0 {
		t.Fatalf("findings:\n%s", findings(fs))
	}
	parsed, err := ParseJSON(mustJSON(t, tpl))
	if err != nil {
		t.Fatal(err)
	}
	if fs := Validate(parsed); len(fs) > 0 {
		t.Fatalf("parsed findings:\n%s", findings(fs))
	}
	if d := diffTopology(localTopology(t, p), templateTopology(t, parsed)); len(d) > 0 {
		t.Errorf("parity: %v", d)
	}
	var img Parameter
	for _, prm := range tpl.Parameters {
		if prm.Name == "ImageIdX8664" {
			img = prm
		}
	}
	if img.Type != "AWS::EC2::Image::Id" || img.Default != "ami-0123456789abcdef0" {
		t.Errorf("image parameter = %+v", img)
	}
	deps := find(t, tpl, "AutoScalingGroupWeb").DependsOn
	for _, want := range []string{"LoadBalancerWebListener80", "LoadBalancerWebListener443", "LoadBalancerWebListener443Rule1"} {
		if !slices.Contains(deps, want) {
			t.Errorf("group does not depend on %s: %v", want, deps)
		}
	}
}

// featurePlan is the example's plan with what the goldens do not cover.
func featurePlan(t testing.TB) *plan.Plan {
	p := loadPlan(t, stacks[0].file)
	p.AWS.AMI = "ami-0123456789abcdef0"
	p.Bastion = nil
	tg2 := p.TargetGroups[0]
	tg2.Name = "canary"
	tg2.Stickiness = &plan.Stickiness{Type: "app_cookie", Duration: 3600 * time.Second, CookieName: "session"}
	tg2.HealthCheck.Port = 8000
	p.TargetGroups = append(p.TargetGroups, tg2)
	p.AutoScalingGroups[0].TargetGroups = append(p.AutoScalingGroups[0].TargetGroups, "canary")
	lb := &p.LoadBalancers[0]
	lb.Listeners = append(lb.Listeners, plan.Listener{
		Port: 443, Protocol: "HTTPS", Certificate: &spec.Certificate{ARN: "arn:aws:acm:us-east-1:123456789012:certificate/abc"},
		DefaultAction: spec.Action{Forward: &spec.Forward{TargetGroups: []spec.WeightedTarget{{Name: "web", Weight: 90}, {Name: "canary", Weight: 10}}}},
		Rules: []spec.ListenerRule{
			{Priority: 1, Conditions: spec.Conditions{HostHeader: []string{"api.example.com"}, HTTPHeader: &spec.HeaderCondition{Name: "X-Canary", Values: []string{"1"}}},
				Action: spec.Action{Forward: &spec.Forward{TargetGroup: "canary"}}},
			{Priority: 2, Conditions: spec.Conditions{QueryString: []spec.KeyValue{{Key: "v", Value: "2"}, {Value: "beta"}}, SourceIP: []string{"192.0.2.0/24"}},
				Action: spec.Action{FixedResponse: &spec.FixedResponse{StatusCode: 503, ContentType: "text/plain", MessageBody: "later"}}},
			{Priority: 3, Conditions: spec.Conditions{PathPattern: []string{"/http/*"}, HTTPRequestMethod: []string{"GET", "HEAD"}},
				Action: spec.Action{Redirect: &spec.Redirect{Protocol: "HTTPS", Port: "443", StatusCode: "HTTP_302"}}},
		},
	})
	// Keep the plan consistent: Build derives the endpoints.
	p.Endpoints = slices.DeleteFunc(p.Endpoints, func(e plan.Endpoint) bool { return e.Kind == plan.EndpointBastion })
	p.Endpoints = append(p.Endpoints, plan.Endpoint{Kind: plan.EndpointListener, Name: "web:443"})
	p.SecurityGroups[0].Ingress = append(p.SecurityGroups[0].Ingress, plan.Rule{Protocol: "tcp", FromPort: 443, ToPort: 443, CIDR: netip.MustParsePrefix("0.0.0.0/0")})
	return p
}

// TestRuleDescriptionCharacters (issue 12, defect 5): EC2 refuses a rule
// description with characters outside its set, as it does a group's.
func TestRuleDescriptionCharacters(t *testing.T) {
	tpl := renderFile(t, stacks[0].file, Options{})
	props(t, tpl, "SecurityGroupAppIngressFromLbTcp8000")["Description"] = "the LB's traffic"
	in := props(t, tpl, "SecurityGroupLb")["SecurityGroupIngress"].([]any)
	in[0].(map[string]any)["Description"] = "web – all"
	got := findings(Validate(tpl))
	for _, want := range []string{
		`SecurityGroupAppIngressFromLbTcp8000.Properties.Description: character "'" is not allowed`,
		`SecurityGroupLb.Properties.SecurityGroupIngress[0].Description: character "–" is not allowed`,
	} {
		if !strings.Contains(got, want) {
			t.Errorf("findings lack %q:\n%s", want, got)
		}
	}
}

// TestCertificateParameter (issue 12, defect 3): an HTTPS listener takes
// its certificate from a parameter whose default is certificate.arn; without
// one the parameter has no default, and its description says a user of the
// raw template must give one.
func TestCertificateParameter(t *testing.T) {
	for _, arn := range []string{"arn:aws:acm:us-east-1:123456789012:certificate/abc", ""} {
		p := featurePlan(t)
		for i, l := range p.LoadBalancers[0].Listeners {
			if l.Protocol == "HTTPS" {
				p.LoadBalancers[0].Listeners[i].Certificate = nil
				if arn != "" {
					p.LoadBalancers[0].Listeners[i].Certificate = &spec.Certificate{ARN: arn}
				}
			}
		}
		tpl, err := Render(p, Options{})
		if err != nil {
			t.Fatal(err)
		}
		var prm *Parameter
		for i := range tpl.Parameters {
			if tpl.Parameters[i].Name == "LoadBalancerWebListener443CertificateArn" {
				prm = &tpl.Parameters[i]
			}
		}
		if prm == nil {
			t.Fatalf("no certificate parameter: %+v", tpl.Parameters)
		}
		if prm.Default != arn {
			t.Errorf("certificate.arn %q: default %q", arn, prm.Default)
		}
		if !strings.HasPrefix(prm.Description, "Required: the ARN of an ACM certificate") || !strings.Contains(prm.Description, "port 443 of load balancer web") {
			t.Errorf("description does not say the parameter is required and for which listener: %q", prm.Description)
		}
		if ref := props(t, tpl, "LoadBalancerWebListener443")["Certificates"].([]any)[0].(map[string]any)["CertificateArn"]; refTarget(ref) != prm.Name {
			t.Errorf("listener's certificate is %v, not the parameter", ref)
		}
	}
}

// TestLoadBalancerSubnetSize (issue 12, defect 12): AWS puts a load balancer
// only in subnets of /27 or larger (with 8 free addresses).
func TestLoadBalancerSubnetSize(t *testing.T) {
	tpl := renderFile(t, stacks[0].file, Options{})
	props(t, tpl, "SubnetPublicB")["CidrBlock"] = "10.0.1.0/28"
	want := "LoadBalancerWeb.Properties.Subnets[1]: subnet SubnetPublicB (10.0.1.0/28) is smaller than /27: AWS places a load balancer only in subnets of /27 or larger, with 8 free addresses"
	if got := findings(Validate(tpl)); !strings.Contains(got, want) {
		t.Errorf("findings lack %q:\n%s", want, got)
	}
}
