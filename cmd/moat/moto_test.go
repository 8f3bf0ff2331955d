package main

// moat deploy, update and destroy against moto (moto_server, an independent
// AWS emulator written by others, started by the test on a loopback port).
// Unlike cfnstandin, moto creates the resources a template describes, so
// these tests check through the AWS API (aws-sdk-go-v2 clients against
// moto, never the template) that what the stack file says is what exists.
//
// moto is not AWS. Where it differs, the test says so (t.Log, "moto
// limit: ...") instead of weakening what it checks:
//   - it places an auto scaling group's instances in one subnet;
//   - it drops the stack outputs it cannot resolve (the load balancer's
//     URL, the bastion's address);
//   - it emits no per-resource events (only the stack's own);
//   - its CloudFormation subnets ignore MapPublicIpOnLaunch, its route
//     tables do not show CloudFormation's subnet associations, and it does
//     not implement AWS::EC2::KeyPair (the launch template's KeyName is "");
//   - it reports every registered target healthy at once, and recreates an
//     auto scaling group on any update;
//   - its change set lists no resource change when only a parameter's
//     value changes;
//   - its DeleteStack answers DependencyViolation for the VPC and leaves the
//     NAT gateways, network interfaces and VPC behind;
//   - it refuses a bad zone, a missing parameter or an unknown certificate
//     at ExecuteChangeSet (AWS: at CreateChangeSet, or as a resource's
//     CREATE_FAILED and a rollback);
//   - its load balancers' DNS names do not resolve, so the post-deploy
//     request to the load balancer cannot be made (moat deploy makes none
//     when the calls go to a custom endpoint).

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/acm"
	"github.com/aws/aws-sdk-go-v2/service/autoscaling"
	"github.com/aws/aws-sdk-go-v2/service/cloudformation"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"
	elbv2 "github.com/aws/aws-sdk-go-v2/service/elasticloadbalancingv2"
	elbtypes "github.com/aws/aws-sdk-go-v2/service/elasticloadbalancingv2/types"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/ssm"
	ssmtypes "github.com/aws/aws-sdk-go-v2/service/ssm/types"

	"github.com/moat-dev/moat/internal/awscfn"
	"github.com/moat-dev/moat/internal/awsdeploy"
	"github.com/moat-dev/moat/internal/lb"
	"github.com/moat-dev/moat/internal/plan"
	"github.com/moat-dev/moat/internal/testutil"
)

// moto is a moto_server this test started.
type moto struct{ url string }

// startMoto starts moto_server on a free loopback port and stops it when
// the test ends. Without moto_server the test skips, except in CI, where it
// fails: scripts/deps.sh says how to install it.
func startMoto(t *testing.T) *moto {
	t.Helper()
	bin, err := exec.LookPath("moto_server")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("moto_server is not installed (CI=true): run scripts/deps.sh test, or pip install 'moto[server]>=5.2'")
		}
		t.Skip("moto_server is not installed: pip install 'moto[server]>=5.2' (scripts/deps.sh test says so too)")
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	cmd := exec.Command(bin, "-H", "127.0.0.1", "-p", strconv.Itoa(port))
	var log testutil.Buffer
	cmd.Stdout, cmd.Stderr = &log, &log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-done
	})
	m := &moto{url: "http://127.0.0.1:" + strconv.Itoa(port)}
	testutil.Eventually(t, 30*time.Second, func() error {
		select {
		case <-done:
			t.Fatalf("moto_server exited:\n%s", log.String())
		default:
		}
		resp, err := http.Get(m.url + "/moto-api/")
		if err != nil {
			return fmt.Errorf("moto_server not answering on %s: %w\n%s", m.url, err, log.String())
		}
		resp.Body.Close()
		return nil
	})
	return m
}

// reset forgets every resource, so that each case starts from an empty account.
func (m *moto) reset(t *testing.T) {
	t.Helper()
	resp, err := http.Post(m.url+"/moto-api/reset", "application/json", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
}

// motoEnv points the AWS SDK (in this process and in moat) at moto with
// fake credentials; nothing can reach AWS.
func motoEnv(t *testing.T, m *moto) {
	t.Helper()
	testutil.FakeAWS(t, m.url)
}

func motoClients(t *testing.T, region string) *awsdeploy.Clients {
	t.Helper()
	cl, err := awsdeploy.Connect(context.Background(), awsdeploy.ClientOptions{Region: region})
	if err != nil {
		t.Fatal(err)
	}
	return cl
}

func motoCtx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return c
}

// stackResources returns the stack's physical ids by resource type, and by
// logical id under the key "id:LOGICAL".
func stackResources(t *testing.T, cl *awsdeploy.Clients, stack string) map[string][]string {
	t.Helper()
	out := map[string][]string{}
	p := cloudformation.NewListStackResourcesPaginator(cl.CloudFormation, &cloudformation.ListStackResourcesInput{StackName: aws.String(stack)})
	for p.HasMorePages() {
		page, err := p.NextPage(motoCtx(t))
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range page.StackResourceSummaries {
			out[aws.ToString(r.ResourceType)] = append(out[aws.ToString(r.ResourceType)], aws.ToString(r.PhysicalResourceId))
			out["id:"+aws.ToString(r.LogicalResourceId)] = []string{aws.ToString(r.PhysicalResourceId)}
		}
	}
	return out
}

func one(t *testing.T, res map[string][]string, typ string) string {
	t.Helper()
	if len(res[typ]) != 1 {
		t.Fatalf("stack has %d %s, want 1: %v", len(res[typ]), typ, res[typ])
	}
	return res[typ][0]
}

func sorted(s []string) []string {
	s = slices.Clone(s)
	sort.Strings(s)
	return s
}

// deployed is what the checks found, for the update and destroy steps.
type deployed struct {
	vpc, lb, listener, asg, tg string
	subnets                    map[string]string // plan subnet name -> id
	groups                     map[string]string // plan group name -> id
	natGateways                []string
	instances                  []string
}

// checkDeployed asserts through the AWS API that the stack's resources
// exist as the plan (the stack file, resolved) says.
func checkDeployed(t *testing.T, cl *awsdeploy.Clients, p *plan.Plan) *deployed {
	t.Helper()
	ctx := motoCtx(t)
	res := stackResources(t, cl, p.Stack)
	d := &deployed{subnets: map[string]string{}, groups: map[string]string{}}

	// VPC.
	d.vpc = one(t, res, "AWS::EC2::VPC")
	vpcs, err := cl.EC2.DescribeVpcs(ctx, &ec2.DescribeVpcsInput{VpcIds: []string{d.vpc}})
	if err != nil || len(vpcs.Vpcs) != 1 {
		t.Fatalf("vpc %s: %v", d.vpc, err)
	}
	if got := aws.ToString(vpcs.Vpcs[0].CidrBlock); got != p.VPC.CIDR.String() {
		t.Errorf("vpc cidr %s, want %s", got, p.VPC.CIDR)
	}
	inVPC := []ec2types.Filter{{Name: aws.String("vpc-id"), Values: []string{d.vpc}}}

	// Subnets: CIDR, zone, public or not.
	subnets, err := cl.EC2.DescribeSubnets(ctx, &ec2.DescribeSubnetsInput{Filters: inVPC})
	if err != nil {
		t.Fatal(err)
	}
	if len(subnets.Subnets) != len(p.Subnets) {
		t.Errorf("%d subnets in the vpc, want %d", len(subnets.Subnets), len(p.Subnets))
	}
	zoneOf := map[string]string{}
	for _, z := range p.Zones {
		zoneOf[z.Name] = z.AWSName
	}
	for _, ps := range p.Subnets {
		found := false
		for _, s := range subnets.Subnets {
			if aws.ToString(s.CidrBlock) != ps.CIDR.String() {
				continue
			}
			found = true
			d.subnets[ps.Name] = aws.ToString(s.SubnetId)
			if got := aws.ToString(s.AvailabilityZone); got != zoneOf[ps.Zone] {
				t.Errorf("subnet %s (%s) in %s, want %s", ps.Name, ps.CIDR, got, zoneOf[ps.Zone])
			}
			switch got := aws.ToBool(s.MapPublicIpOnLaunch); {
			case got == ps.Public:
			case ps.Public:
				t.Logf("moto limit: public subnet %s has MapPublicIpOnLaunch false (moto's CloudFormation subnet ignores the property)", ps.Name)
			default:
				t.Errorf("private subnet %s has MapPublicIpOnLaunch true", ps.Name)
			}
		}
		if !found {
			t.Errorf("no subnet %s with cidr %s", ps.Name, ps.CIDR)
		}
	}

	// Internet gateway and NAT gateways.
	igws, err := cl.EC2.DescribeInternetGateways(ctx, &ec2.DescribeInternetGatewaysInput{Filters: []ec2types.Filter{{Name: aws.String("attachment.vpc-id"), Values: []string{d.vpc}}}})
	if err != nil || len(igws.InternetGateways) != 1 {
		t.Fatalf("internet gateway of %s: %v %+v", d.vpc, err, igws)
	}
	igw := aws.ToString(igws.InternetGateways[0].InternetGatewayId)
	nats, err := cl.EC2.DescribeNatGateways(ctx, &ec2.DescribeNatGatewaysInput{Filter: inVPC})
	if err != nil {
		t.Fatal(err)
	}
	natIn := map[string]string{} // subnet id -> nat gateway id
	for _, n := range nats.NatGateways {
		natIn[aws.ToString(n.SubnetId)] = aws.ToString(n.NatGatewayId)
		d.natGateways = append(d.natGateways, aws.ToString(n.NatGatewayId))
	}
	if len(nats.NatGateways) != len(p.NATGateways) {
		t.Errorf("%d NAT gateways, want %d", len(nats.NatGateways), len(p.NATGateways))
	}
	natByName := map[string]string{}
	for _, n := range p.NATGateways {
		if natByName[n.Name] = natIn[d.subnets[n.Subnet]]; natByName[n.Name] == "" {
			t.Errorf("no NAT gateway %s in subnet %s", n.Name, n.Subnet)
		}
	}

	// Route tables: the subnets each serves, and its routes.
	rts, err := cl.EC2.DescribeRouteTables(ctx, &ec2.DescribeRouteTablesInput{Filters: inVPC})
	if err != nil {
		t.Fatal(err)
	}
	for _, prt := range p.RouteTables {
		var want []string
		for _, s := range prt.Subnets {
			want = append(want, d.subnets[s])
		}
		id := res["id:RouteTable"+camelName(prt.Name)]
		var rt *ec2types.RouteTable
		for i := range rts.RouteTables {
			if len(id) == 1 && aws.ToString(rts.RouteTables[i].RouteTableId) == id[0] {
				rt = &rts.RouteTables[i]
			}
		}
		if rt == nil {
			t.Errorf("no route table %s (RouteTable%s) in the vpc", prt.Name, camelName(prt.Name))
			continue
		}
		var assoc []string
		for _, a := range rt.Associations {
			if a.SubnetId != nil {
				assoc = append(assoc, aws.ToString(a.SubnetId))
			}
		}
		switch {
		case slices.Equal(sorted(assoc), sorted(want)):
		case len(assoc) == 0:
			t.Logf("moto limit: route table %s shows no subnet associations (moto records CloudFormation's SubnetRouteTableAssociation apart from the route table); want %v", prt.Name, prt.Subnets)
		default:
			t.Errorf("route table %s serves subnets %v, want %v (%v)", prt.Name, assoc, want, prt.Subnets)
		}
		routes := map[string]string{}
		for _, r := range rt.Routes {
			target := aws.ToString(r.GatewayId) + aws.ToString(r.NatGatewayId)
			routes[aws.ToString(r.DestinationCidrBlock)] = target
		}
		for _, pr := range prt.Routes {
			want := ""
			switch pr.Target {
			case plan.TargetLocal:
				want = "local"
			case plan.TargetInternetGateway:
				want = igw
			case plan.TargetNAT:
				want = natByName[pr.NAT]
			}
			if got := routes[pr.Destination.String()]; got != want {
				t.Errorf("route table %s: %s -> %q, want %q (%s)", prt.Name, pr.Destination, got, want, pr.Target)
			}
		}
		if len(routes) != len(prt.Routes) {
			t.Errorf("route table %s has routes %v, want %d", prt.Name, routes, len(prt.Routes))
		}
	}

	// Security groups, found by their description, and their ingress rules
	// (CIDR and group to group).
	sgs, err := cl.EC2.DescribeSecurityGroups(ctx, &ec2.DescribeSecurityGroupsInput{Filters: inVPC})
	if err != nil {
		t.Fatal(err)
	}
	for _, pg := range p.SecurityGroups {
		for _, g := range sgs.SecurityGroups {
			if aws.ToString(g.Description) == pg.Description {
				d.groups[pg.Name] = aws.ToString(g.GroupId)
			}
		}
		if d.groups[pg.Name] == "" {
			t.Errorf("no security group %q (%s) in the vpc", pg.Name, pg.Description)
		}
	}
	for _, pg := range p.SecurityGroups {
		var got, want []string
		for _, g := range sgs.SecurityGroups {
			if aws.ToString(g.GroupId) != d.groups[pg.Name] {
				continue
			}
			for _, perm := range g.IpPermissions {
				for _, r := range perm.IpRanges {
					got = append(got, fmt.Sprintf("%s %d-%d %s", aws.ToString(perm.IpProtocol), aws.ToInt32(perm.FromPort), aws.ToInt32(perm.ToPort), aws.ToString(r.CidrIp)))
				}
				for _, pair := range perm.UserIdGroupPairs {
					got = append(got, fmt.Sprintf("%s %d-%d %s", aws.ToString(perm.IpProtocol), aws.ToInt32(perm.FromPort), aws.ToInt32(perm.ToPort), aws.ToString(pair.GroupId)))
				}
			}
		}
		for _, r := range pg.Ingress {
			peer := r.CIDR.String()
			if r.Group != "" {
				peer = d.groups[r.Group]
			}
			want = append(want, fmt.Sprintf("%s %d-%d %s", r.Protocol, r.FromPort, r.ToPort, peer))
		}
		if !slices.Equal(sorted(got), sorted(want)) {
			t.Errorf("security group %s ingress:\n got  %v\n want %v", pg.Name, sorted(got), sorted(want))
		}
	}

	// Launch template: type, groups, key pair (which exists), the image
	// the stack resolved.
	ltID := one(t, res, "AWS::EC2::LaunchTemplate")
	ltv, err := cl.EC2.DescribeLaunchTemplateVersions(ctx, &ec2.DescribeLaunchTemplateVersionsInput{LaunchTemplateId: aws.String(ltID), Versions: []string{"$Latest"}})
	if err != nil || len(ltv.LaunchTemplateVersions) != 1 {
		t.Fatalf("launch template %s: %v", ltID, err)
	}
	ltd := ltv.LaunchTemplateVersions[0].LaunchTemplateData
	plt := p.LaunchTemplates[0]
	if string(ltd.InstanceType) != plt.AWSInstanceType {
		t.Errorf("launch template instance type %s, want %s", ltd.InstanceType, plt.AWSInstanceType)
	}
	var wantGroups []string
	for _, g := range plt.SecurityGroups {
		wantGroups = append(wantGroups, d.groups[g])
	}
	if !slices.Equal(sorted(ltd.SecurityGroupIds), sorted(wantGroups)) {
		t.Errorf("launch template groups %v, want %v", ltd.SecurityGroupIds, wantGroups)
	}
	if !strings.HasPrefix(aws.ToString(ltd.ImageId), "ami-") || aws.ToString(ltd.UserData) == "" {
		t.Errorf("launch template image %q, user data %d bytes", aws.ToString(ltd.ImageId), len(aws.ToString(ltd.UserData)))
	}
	if keyName := aws.ToString(ltd.KeyName); keyName == "" && len(res["id:KeyPair"+camelName(plt.KeyPair)]) == 0 {
		t.Logf("moto limit: no key pair %s (moto's CloudFormation does not implement AWS::EC2::KeyPair: it lists a resource without a logical id, and the launch template's KeyName, a Ref to it, is empty)", plt.KeyPair)
	} else {
		kps, err := cl.EC2.DescribeKeyPairs(ctx, &ec2.DescribeKeyPairsInput{KeyNames: []string{keyName}})
		if err != nil || len(kps.KeyPairs) != 1 {
			t.Errorf("key pair %q of the launch template: %v", keyName, err)
		} else if !strings.Contains(keyName, plt.KeyPair) {
			t.Errorf("key pair %q does not carry the file's name %q", keyName, plt.KeyPair)
		}
	}

	// Target group.
	d.tg = one(t, res, "AWS::ElasticLoadBalancingV2::TargetGroup")
	tgs, err := cl.ELBv2.DescribeTargetGroups(ctx, &elbv2.DescribeTargetGroupsInput{TargetGroupArns: []string{d.tg}})
	if err != nil || len(tgs.TargetGroups) != 1 {
		t.Fatalf("target group: %v", err)
	}
	tg, ptg := tgs.TargetGroups[0], p.TargetGroups[0]
	if aws.ToInt32(tg.Port) != int32(ptg.Port) || string(tg.Protocol) != ptg.Protocol || aws.ToString(tg.VpcId) != d.vpc ||
		aws.ToString(tg.HealthCheckPath) != ptg.HealthCheck.Path || aws.ToInt32(tg.HealthCheckIntervalSeconds) != int32(ptg.HealthCheck.Interval/time.Second) ||
		aws.ToInt32(tg.HealthyThresholdCount) != int32(ptg.HealthCheck.HealthyThreshold) || aws.ToInt32(tg.UnhealthyThresholdCount) != int32(ptg.HealthCheck.UnhealthyThreshold) {
		t.Errorf("target group %+v, want %+v", tg, ptg)
	}

	// Auto scaling group.
	d.asg = one(t, res, "AWS::AutoScaling::AutoScalingGroup")
	asgs, err := cl.AutoScaling.DescribeAutoScalingGroups(ctx, &autoscaling.DescribeAutoScalingGroupsInput{AutoScalingGroupNames: []string{d.asg}})
	if err != nil || len(asgs.AutoScalingGroups) != 1 {
		t.Fatalf("auto scaling group %s: %v", d.asg, err)
	}
	g, pg := asgs.AutoScalingGroups[0], p.AutoScalingGroups[0]
	if aws.ToInt32(g.MinSize) != int32(pg.MinSize) || aws.ToInt32(g.MaxSize) != int32(pg.MaxSize) || aws.ToInt32(g.DesiredCapacity) != int32(pg.DesiredCapacity) {
		t.Errorf("group min/max/desired %d/%d/%d, want %d/%d/%d", aws.ToInt32(g.MinSize), aws.ToInt32(g.MaxSize), aws.ToInt32(g.DesiredCapacity), pg.MinSize, pg.MaxSize, pg.DesiredCapacity)
	}
	var wantSubnets []string
	for _, s := range pg.Subnets {
		wantSubnets = append(wantSubnets, d.subnets[s])
	}
	if got := strings.Split(aws.ToString(g.VPCZoneIdentifier), ","); !slices.Equal(sorted(got), sorted(wantSubnets)) {
		t.Errorf("group subnets %v, want %v (%v)", got, wantSubnets, pg.Subnets)
	}
	if !slices.Equal(g.TargetGroupARNs, []string{d.tg}) {
		t.Errorf("group target groups %v, want [%s]", g.TargetGroupARNs, d.tg)
	}
	if aws.ToString(g.HealthCheckType) != pg.HealthCheckType || aws.ToInt32(g.HealthCheckGracePeriod) != int32(pg.HealthCheckGracePeriod/time.Second) {
		t.Errorf("group health check %s/%ds, want %s/%s", aws.ToString(g.HealthCheckType), aws.ToInt32(g.HealthCheckGracePeriod), pg.HealthCheckType, pg.HealthCheckGracePeriod)
	}
	if g.LaunchTemplate == nil || aws.ToString(g.LaunchTemplate.LaunchTemplateId) != ltID {
		t.Errorf("group launch template %+v, want %s", g.LaunchTemplate, ltID)
	}
	if len(g.Instances) != pg.DesiredCapacity {
		t.Errorf("group has %d instances, want %d", len(g.Instances), pg.DesiredCapacity)
	}
	zones := map[string]bool{}
	for _, in := range g.Instances {
		zones[aws.ToString(in.AvailabilityZone)] = true
		d.instances = append(d.instances, aws.ToString(in.InstanceId))
	}
	if len(zones) < min(len(pg.Subnets), len(g.Instances)) {
		t.Logf("moto limit: the group's %d instances are all in %v (moto places a group's instances in one subnet; AWS balances them over %v)", len(g.Instances), zones, pg.Subnets)
	}

	// Load balancer: scheme, subnets, groups; listeners and rules.
	d.lb = one(t, res, "AWS::ElasticLoadBalancingV2::LoadBalancer")
	lbs, err := cl.ELBv2.DescribeLoadBalancers(ctx, &elbv2.DescribeLoadBalancersInput{LoadBalancerArns: []string{d.lb}})
	if err != nil || len(lbs.LoadBalancers) != 1 {
		t.Fatalf("load balancer: %v", err)
	}
	lb, plb := lbs.LoadBalancers[0], p.LoadBalancers[0]
	if lb.Scheme != elbtypes.LoadBalancerSchemeEnumInternetFacing || lb.Type != elbtypes.LoadBalancerTypeEnumApplication {
		t.Errorf("load balancer scheme %s type %s", lb.Scheme, lb.Type)
	}
	var lbSubnets, wantLBSubnets []string
	for _, az := range lb.AvailabilityZones {
		lbSubnets = append(lbSubnets, aws.ToString(az.SubnetId))
	}
	for _, n := range plb.Nodes {
		wantLBSubnets = append(wantLBSubnets, d.subnets[n.Subnet])
	}
	if !slices.Equal(sorted(lbSubnets), sorted(wantLBSubnets)) {
		t.Errorf("load balancer subnets %v, want %v", lbSubnets, wantLBSubnets)
	}
	var wantLBGroups []string
	for _, g := range plb.SecurityGroups {
		wantLBGroups = append(wantLBGroups, d.groups[g])
	}
	if !slices.Equal(sorted(lb.SecurityGroups), sorted(wantLBGroups)) {
		t.Errorf("load balancer groups %v, want %v", lb.SecurityGroups, wantLBGroups)
	}
	ls, err := cl.ELBv2.DescribeListeners(ctx, &elbv2.DescribeListenersInput{LoadBalancerArn: aws.String(d.lb)})
	if err != nil {
		t.Fatal(err)
	}
	if len(ls.Listeners) != len(plb.Listeners) {
		t.Errorf("%d listeners, want %d", len(ls.Listeners), len(plb.Listeners))
	}
	for _, pl := range plb.Listeners {
		var l *elbtypes.Listener
		for i := range ls.Listeners {
			if aws.ToInt32(ls.Listeners[i].Port) == int32(pl.Port) {
				l = &ls.Listeners[i]
			}
		}
		if l == nil {
			t.Errorf("no listener on port %d", pl.Port)
			continue
		}
		if string(l.Protocol) != pl.Protocol {
			t.Errorf("listener %d protocol %s, want %s", pl.Port, l.Protocol, pl.Protocol)
		}
		if pl.Port == 80 {
			d.listener = aws.ToString(l.ListenerArn)
		}
		if len(l.DefaultActions) != 1 || l.DefaultActions[0].Type != elbtypes.ActionTypeEnumForward || aws.ToString(l.DefaultActions[0].TargetGroupArn) != d.tg {
			t.Errorf("listener %d default action %+v, want forward to %s", pl.Port, l.DefaultActions, d.tg)
		}
		rules, err := cl.ELBv2.DescribeRules(ctx, &elbv2.DescribeRulesInput{ListenerArn: l.ListenerArn})
		if err != nil {
			t.Fatal(err)
		}
		var got, want []string
		for _, r := range rules.Rules {
			if aws.ToBool(r.IsDefault) {
				continue
			}
			var paths []string
			for _, c := range r.Conditions {
				if c.PathPatternConfig != nil {
					paths = append(paths, c.PathPatternConfig.Values...)
				} else if aws.ToString(c.Field) == "path-pattern" {
					paths = append(paths, c.Values...)
				}
			}
			got = append(got, fmt.Sprintf("%s %v", aws.ToString(r.Priority), paths))
		}
		for _, r := range pl.Rules {
			want = append(want, fmt.Sprintf("%d %v", r.Priority, r.Conditions.PathPattern))
		}
		if !slices.Equal(sorted(got), sorted(want)) {
			t.Errorf("listener %d rules %v, want %v", pl.Port, got, want)
		}
	}
	return d
}

// camelName is the renderer's spelling of a name in logical ids
// (private-a -> PrivateA).
func camelName(name string) string {
	var b strings.Builder
	for _, part := range strings.Split(name, "-") {
		if part != "" {
			b.WriteString(strings.ToUpper(part[:1]) + part[1:])
		}
	}
	return b.String()
}

// motoDeploy runs moat deploy in-process, as a user would.
func motoDeploy(t *testing.T, path string, extra ...string) (string, string) {
	t.Helper()
	start := time.Now()
	stdout, stderr, code := run(t, append([]string{"deploy", "-f", path, "-y", "--poll-interval=50ms"}, extra...)...)
	if code != 0 {
		t.Fatalf("moat deploy: exit %d\n%s", code, stderr)
	}
	t.Logf("moat deploy %s: %s", strings.Join(extra, " "), time.Since(start).Round(time.Millisecond))
	return stdout, stderr
}

func TestDeployAgainstMoto(t *testing.T) {
	m := startMoto(t)
	for _, tc := range []struct {
		name  string
		edits []string
	}{
		{"example", nil},
		{"three-zones", []string{
			"zones: [a, b]", "zones: [a, b, c]",
			"nat: single", "nat: per-zone",
			"subnets: [private-a, private-b]", "subnets: [private-a, private-b, private-c]",
			"subnets: [public-a, public-b]", "subnets: [public-a, public-b, public-c]",
			"name: realtime", "name: realtime3",
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m.reset(t)
			motoEnv(t, m)
			path := copyExample(t, tc.edits...)
			p, err := loadPlan(path, io.Discard)
			if err != nil {
				t.Fatal(err)
			}
			cl := motoClients(t, p.AWS.Region)

			// Create.
			stdout, stderr := motoDeploy(t, path)
			if !strings.Contains(stderr, "change set for stack "+p.Stack+" (CREATE)") || !strings.Contains(stderr, "stack "+p.Stack+": CREATE_COMPLETE") {
				t.Errorf("deploy stderr:\n%s", stderr)
			}
			d := checkDeployed(t, cl, p)
			if t.Failed() {
				t.FailNow()
			}
			// Verification: the targets are healthy; the request to the
			// load balancer cannot be made.
			if want := fmt.Sprintf("targets: TargetGroupWeb %d healthy", p.AutoScalingGroups[0].DesiredCapacity); !strings.Contains(stderr, want) {
				t.Errorf("deploy did not wait for healthy targets (%q):\n%s", want, stderr)
			}
			t.Logf("moto limit: moto reports every registered target healthy at once (it runs no health checks), so the wait for health passes at the first look")
			if !strings.Contains(stderr, "verifying: no request to load balancer web: the stack has no output LoadBalancerWebURL") {
				t.Errorf("deploy stderr does not say why it made no request:\n%s", stderr)
			}
			t.Logf("moto limit: no request to the load balancer (moto dropped the URL output, and its load balancer DNS names do not resolve)")
			checkSSHConfig(t, cl, p, path, d)
			var missing []string
			for _, o := range []string{awscfn.OutputURL(p.LoadBalancers[0].Name), "BastionPublicIP", "SSHCommand"} {
				if !strings.Contains(stdout, o) {
					missing = append(missing, o)
				}
			}
			if len(missing) > 0 {
				t.Logf("moto limit: the stack has no outputs %v (moto drops the outputs it cannot resolve: Fn::GetAtt of a load balancer's DNSName, an instance's PublicIp)", missing)
			}
			events, err := cl.CloudFormation.DescribeStackEvents(motoCtx(t), &cloudformation.DescribeStackEventsInput{StackName: aws.String(p.Stack)})
			if err != nil {
				t.Fatal(err)
			}
			perResource := 0
			for _, e := range events.StackEvents {
				if aws.ToString(e.LogicalResourceId) != p.Stack {
					perResource++
				}
			}
			if perResource == 0 {
				t.Logf("moto limit: %d stack events, none for a resource (moto emits only the stack's own), so the progress view shows only the stack", len(events.StackEvents))
			}

			// Update through an UPDATE change set: desired 2 -> 3, and a
			// listener rule added.
			edited, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			s := strings.Replace(string(edited), "desiredCapacity: 2", "desiredCapacity: 3", 1)
			s = strings.Replace(s, "          forward: {targetGroup: web}\n", "          forward: {targetGroup: web}\n        rules:\n          - priority: 10\n            conditions: {pathPattern: [/api/*]}\n            action: {forward: {targetGroup: web}}\n", 1)
			if err := os.WriteFile(path, []byte(s), 0o644); err != nil {
				t.Fatal(err)
			}
			p2, err := loadPlan(path, io.Discard)
			if err != nil {
				t.Fatal(err)
			}
			_, stderr = motoDeploy(t, path)
			for _, want := range []string{"change set for stack " + p.Stack + " (UPDATE)", "stack " + p.Stack + ": UPDATE_COMPLETE"} {
				if !strings.Contains(stderr, want) {
					t.Errorf("update stderr lacks %q:\n%s", want, stderr)
				}
			}
			for _, want := range []string{"Add     LoadBalancerWebListener80Rule10  AWS::ElasticLoadBalancingV2::ListenerRule", "Modify  AutoScalingGroupWeb              AWS::AutoScaling::AutoScalingGroup"} {
				if !strings.Contains(stderr, want) {
					t.Errorf("the UPDATE change set lacks %q:\n%s", want, stderr)
				}
			}
			d2 := checkDeployed(t, cl, p2)
			if d2.vpc != d.vpc || d2.lb != d.lb || d2.tg != d.tg || d2.listener != d.listener {
				t.Errorf("the update replaced the vpc, load balancer, target group or listener: %+v -> %+v", d, d2)
			}
			if d2.asg != d.asg {
				t.Logf("moto limit: the update replaced the group %s with %s (moto recreates an auto scaling group on any update; AWS changes DesiredCapacity in place)", d.asg, d2.asg)
			}

			// Destroy.
			_, stderr, code := run(t, "destroy", "-f", path, "-y", "--poll-interval=50ms")
			if code != 0 {
				if !strings.Contains(stderr, "DependencyViolation") || !strings.Contains(stderr, d.vpc) {
					t.Fatalf("moat destroy: exit %d\n%s", code, stderr)
				}
				t.Logf("moto limit: DeleteStack answered DependencyViolation for the VPC (moto deletes the stack but leaves its NAT gateways and network interfaces, so the VPC stays): %s", strings.TrimSpace(stderr))
			}
			checkGone(t, cl, p.Stack, d2, code != 0)
		})
	}
}

// checkSSHConfig runs moat ssh-config --aws and checks, with ssh -G (which
// resolves the configuration and connects nowhere), that each instance of
// the group is reached through the bastion's public address with the key
// pair's file.
func checkSSHConfig(t *testing.T, cl *awsdeploy.Clients, p *plan.Plan, path string, d *deployed) {
	t.Helper()
	stdout, stderr, code := run(t, "ssh-config", "--aws", "-f", path)
	if code != 0 {
		t.Fatalf("ssh-config --aws: exit %d\n%s", code, stderr)
	}
	res := stackResources(t, cl, p.Stack)
	ins, err := cl.EC2.DescribeInstances(motoCtx(t), &ec2.DescribeInstancesInput{InstanceIds: append([]string{one(t, res, "AWS::EC2::Instance")}, d.instances...)})
	if err != nil {
		t.Fatal(err)
	}
	addr := map[string]string{}
	var bastionIP string
	for _, r := range ins.Reservations {
		for _, in := range r.Instances {
			addr[aws.ToString(in.InstanceId)] = aws.ToString(in.PrivateIpAddress)
			if aws.ToString(in.InstanceId) == res["AWS::EC2::Instance"][0] {
				bastionIP = aws.ToString(in.PublicIpAddress)
			}
		}
	}
	if bastionIP == "" || !strings.Contains(stdout, "Host "+p.Stack+"-bastion\n  HostName "+bastionIP+"\n") {
		t.Errorf("ssh-config --aws lacks the bastion at %q:\n%s", bastionIP, stdout)
	}
	cfg := filepath.Join(t.TempDir(), "ssh_config")
	if err := os.WriteFile(cfg, []byte(stdout), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, id := range d.instances {
		out, err := exec.Command("ssh", "-G", "-F", cfg, p.Stack+"-"+id).CombinedOutput()
		if err != nil {
			t.Fatalf("ssh -G %s-%s: %v\n%s", p.Stack, id, err, out)
		}
		for _, want := range []string{"hostname " + addr[id] + "\n", "user ec2-user\n", "proxyjump " + p.Stack + "-bastion\n", "identityfile ~/.ssh/ops\n", "stricthostkeychecking accept-new\n"} {
			if !strings.Contains(string(out), want) {
				t.Errorf("ssh -G %s-%s lacks %q", p.Stack, id, strings.TrimSpace(want))
			}
		}
	}
	out, err := exec.Command("ssh", "-G", "-F", cfg, p.Stack+"-bastion").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "hostname "+bastionIP+"\n") || !strings.Contains(string(out), "identityfile ~/.ssh/ops\n") {
		t.Errorf("ssh -G %s-bastion: %v\n%s", p.Stack, err, out)
	}
}

// checkGone asserts that the stack and every resource moto deletes with it
// are gone.
func checkGone(t *testing.T, cl *awsdeploy.Clients, stack string, d *deployed, dependencyViolation bool) {
	t.Helper()
	ctx := motoCtx(t)
	if _, err := cl.CloudFormation.DescribeStacks(ctx, &cloudformation.DescribeStacksInput{StackName: aws.String(stack)}); err == nil || !strings.Contains(err.Error(), "does not exist") {
		t.Errorf("stack %s after destroy: %v", stack, err)
	}
	if out, err := cl.AutoScaling.DescribeAutoScalingGroups(ctx, &autoscaling.DescribeAutoScalingGroupsInput{AutoScalingGroupNames: []string{d.asg}}); err != nil || len(out.AutoScalingGroups) != 0 {
		t.Errorf("auto scaling group %s after destroy: %v %d", d.asg, err, len(out.AutoScalingGroups))
	}
	if out, err := cl.ELBv2.DescribeLoadBalancers(ctx, &elbv2.DescribeLoadBalancersInput{}); err != nil || len(out.LoadBalancers) != 0 {
		t.Errorf("load balancers after destroy: %v %d", err, len(out.LoadBalancers))
	}
	var left []string
	if out, err := cl.ELBv2.DescribeTargetGroups(ctx, &elbv2.DescribeTargetGroupsInput{}); err != nil {
		t.Error(err)
	} else {
		for _, tg := range out.TargetGroups {
			if !dependencyViolation {
				t.Errorf("target group %s after destroy", aws.ToString(tg.TargetGroupArn))
			}
			left = append(left, aws.ToString(tg.TargetGroupArn))
		}
	}
	inVPC := []ec2types.Filter{{Name: aws.String("vpc-id"), Values: []string{d.vpc}}}
	if out, err := cl.EC2.DescribeSubnets(ctx, &ec2.DescribeSubnetsInput{Filters: inVPC}); err != nil || len(out.Subnets) != 0 {
		t.Errorf("subnets after destroy: %v %d", err, len(out.Subnets))
	}
	if out, err := cl.EC2.DescribeSecurityGroups(ctx, &ec2.DescribeSecurityGroupsInput{Filters: inVPC}); err != nil {
		t.Error(err)
	} else {
		for _, g := range out.SecurityGroups {
			if aws.ToString(g.GroupName) != "default" {
				t.Errorf("security group %s (%s) after destroy", aws.ToString(g.GroupId), aws.ToString(g.Description))
			}
		}
	}
	if out, err := cl.EC2.DescribeLaunchTemplates(ctx, &ec2.DescribeLaunchTemplatesInput{}); err != nil || len(out.LaunchTemplates) != 0 {
		t.Errorf("launch templates after destroy: %v %d", err, len(out.LaunchTemplates))
	}
	if out, err := cl.EC2.DescribeKeyPairs(ctx, &ec2.DescribeKeyPairsInput{}); err != nil || len(out.KeyPairs) != 0 {
		t.Errorf("key pairs after destroy: %v %+v", err, out.KeyPairs)
	}
	if out, err := cl.EC2.DescribeInstances(ctx, &ec2.DescribeInstancesInput{}); err != nil {
		t.Error(err)
	} else {
		for _, r := range out.Reservations {
			for _, in := range r.Instances {
				if in.State != nil && in.State.Name != ec2types.InstanceStateNameTerminated {
					t.Errorf("instance %s is %s after destroy", aws.ToString(in.InstanceId), in.State.Name)
				}
			}
		}
	}
	// What moto leaves behind (AWS deletes them): say so. A target group
	// is left only when the DependencyViolation stopped moto's deletion.
	if out, err := cl.EC2.DescribeNatGateways(ctx, &ec2.DescribeNatGatewaysInput{Filter: inVPC}); err == nil {
		for _, n := range out.NatGateways {
			if n.State != ec2types.NatGatewayStateDeleted {
				left = append(left, aws.ToString(n.NatGatewayId))
			}
		}
	}
	if out, err := cl.EC2.DescribeNetworkInterfaces(ctx, &ec2.DescribeNetworkInterfacesInput{Filters: inVPC}); err == nil {
		for _, n := range out.NetworkInterfaces {
			left = append(left, aws.ToString(n.NetworkInterfaceId))
		}
	}
	if out, err := cl.EC2.DescribeVpcs(ctx, &ec2.DescribeVpcsInput{Filters: []ec2types.Filter{{Name: aws.String("vpc-id"), Values: []string{d.vpc}}}}); err == nil && len(out.Vpcs) > 0 {
		left = append(left, d.vpc)
	}
	if len(left) > 0 {
		t.Logf("moto limit: after the stack is deleted moto still holds %v (NAT gateways, network interfaces, the VPC they keep, and what moto had not reached when the VPC stopped it; AWS deletes them with the stack)", left)
	}
}

// AWS refuses what moat's validation lets through; moat's own checks now
// catch it before any change set, and where they are bypassed, moto's
// refusal reaches the user as moto gave it.
func TestDeployRefusalsAgainstMoto(t *testing.T) {
	m := startMoto(t)

	t.Run("zone", func(t *testing.T) {
		m.reset(t)
		motoEnv(t, m)
		// ap-northeast-1b exists for no account: moat validate knows.
		path := copyExample(t, "region: us-east-1", "region: ap-northeast-1")
		_, stderr, code := run(t, "deploy", "-f", path, "-y", "--poll-interval=50ms")
		if code != exitInvalid || !strings.Contains(stderr, "region ap-northeast-1 has no zone b") {
			t.Errorf("moat deploy in ap-northeast-1b: exit %d, want %d:\n%s", code, exitInvalid, stderr)
		}
		// Without moat's checks, moto refuses the subnet itself.
		tokyo := motoClients(t, "ap-northeast-1")
		err := deployBypassingChecks(t, tokyo, copyExample(t), nil, strings.NewReplacer("us-east-1", "ap-northeast-1"))
		const refusal = "for parameter availabilityZone is invalid. Subnets can currently only be created in the following availability zones:"
		if err == nil || !strings.HasPrefix(err.Error(), "execute change set for stack realtime: InvalidParameterValue: Value (ap-northeast-1b) "+refusal) {
			t.Fatalf("moto's refusal of ap-northeast-1b, as moat reports it: %v", err)
		}
		t.Logf("moto refuses at ExecuteChangeSet (AWS: the subnet's CREATE_FAILED, then a rollback): %.240s...", err)
		noStack(t, tokyo, "realtime")

		// us-west-1c exists for some accounts only (validation lets it
		// through); moto's account has us-west-1a and b: moat deploy asks
		// EC2 and stops before any change set.
		m.reset(t)
		path = copyExample(t, "region: us-east-1", "region: us-west-1", "zones: [a, b]", "zones: [b, c]",
			"subnet: public-a", "subnet: public-b", "[private-a, private-b]", "[private-b, private-c]", "[public-a, public-b]", "[public-b, public-c]")
		_, stderr, code = run(t, "deploy", "-f", path, "-y", "--poll-interval=50ms")
		want := "zone us-west-1c is not available to this account in us-west-1: it has us-west-1a, us-west-1b; set vpc.zones in the stack file to letters among [a b]"
		if code != exitFailure || !strings.Contains(stderr, want) || strings.Contains(stderr, "change set") {
			t.Errorf("moat deploy in us-west-1c: exit %d, want %d and %q before any change set:\n%s", code, exitFailure, want, stderr)
		}
		west := motoClients(t, "us-west-1")
		noStack(t, west, "realtime")
		err = deployBypassingChecks(t, west, path, nil, nil)
		if err == nil || !strings.Contains(err.Error(), "Value (us-west-1c) "+refusal) {
			t.Fatalf("moto's refusal of us-west-1c: %v", err)
		}
		noStack(t, west, "realtime")
	})

	https := []string{
		"      - {protocol: tcp, port: 80, cidr: 0.0.0.0/0}\n", "      - {protocol: tcp, port: 80, cidr: 0.0.0.0/0}\n      - {protocol: tcp, port: 443, cidr: 0.0.0.0/0}\n",
		"          forward: {targetGroup: web}\n", "          forward: {targetGroup: web}\n      - port: 443\n        protocol: HTTPS\n        defaultAction:\n          forward: {targetGroup: web}\n",
	}
	const param = "LoadBalancerWebListener443CertificateArn"
	t.Run("certificate", func(t *testing.T) {
		m.reset(t)
		motoEnv(t, m)
		path := copyExample(t, https...)
		cl := motoClients(t, "us-east-1")

		// No certificate at all.
		_, stderr, code := run(t, "deploy", "-f", path, "-y", "--poll-interval=50ms")
		if code != exitFailure || !strings.Contains(stderr, "HTTPS listener LoadBalancerWebListener443 (port 443) has no certificate: pass --parameter "+param+"=arn:aws:acm:us-east-1:ACCOUNT:certificate/ID") {
			t.Errorf("missing certificate: exit %d\n%s", code, stderr)
		}
		noStack(t, cl, "realtime")
		err := deployBypassingChecks(t, cl, path, nil, nil)
		if err == nil || err.Error() != "execute change set for stack realtime: ValidationError: Missing parameter "+param {
			t.Fatalf("moto's refusal of a missing certificate parameter: %v", err)
		}
		t.Logf("moto refuses at ExecuteChangeSet (AWS at CreateChangeSet, \"Parameters: [%s] must have values\"): %v", param, err)
		noStack(t, cl, "realtime")

		// A certificate that does not exist.
		m.reset(t)
		missing := "arn:aws:acm:us-east-1:123456789012:certificate/00000000-0000-4000-8000-000000000000"
		_, stderr, code = run(t, "deploy", "-f", path, "-y", "--poll-interval=50ms", "--parameter", param+"="+missing)
		if code != exitFailure || !strings.Contains(stderr, "certificate "+missing+" does not exist in ACM in us-east-1 (CertificateNotFound)") {
			t.Errorf("unknown certificate: exit %d\n%s", code, stderr)
		}
		noStack(t, cl, "realtime")
		err = deployBypassingChecks(t, cl, path, map[string]string{param: missing}, nil)
		if err == nil || err.Error() != "execute change set for stack realtime: CertificateNotFound: Supplied certificate was not found" {
			t.Fatalf("moto's refusal of an unknown certificate: %v", err)
		}
		t.Logf("moto refuses at ExecuteChangeSet (AWS: the listener's CREATE_FAILED): %v", err)

		// An issued certificate: the HTTPS listener deploys with it.
		m.reset(t)
		cert, key := selfSigned(t)
		imp, err := cl.ACM.ImportCertificate(motoCtx(t), &acm.ImportCertificateInput{Certificate: cert, PrivateKey: key})
		if err != nil {
			t.Fatal(err)
		}
		arn := aws.ToString(imp.CertificateArn)
		motoDeploy(t, path, "--parameter", param+"="+arn)
		res := stackResources(t, cl, "realtime")
		ls, err := cl.ELBv2.DescribeListeners(motoCtx(t), &elbv2.DescribeListenersInput{LoadBalancerArn: aws.String(one(t, res, "AWS::ElasticLoadBalancingV2::LoadBalancer"))})
		if err != nil {
			t.Fatal(err)
		}
		var certs []string
		for _, l := range ls.Listeners {
			if aws.ToInt32(l.Port) == 443 && l.Protocol == elbtypes.ProtocolEnumHttps {
				for _, c := range l.Certificates {
					certs = append(certs, aws.ToString(c.CertificateArn))
				}
			}
		}
		if !slices.Equal(certs, []string{arn}) {
			t.Errorf("HTTPS listener certificates %v, want [%s]", certs, arn)
		}
		// An update without --parameter keeps the stack's certificate.
		edited, _ := os.ReadFile(path)
		os.WriteFile(path, []byte(strings.Replace(string(edited), "desiredCapacity: 2", "desiredCapacity: 3", 1)), 0o644)
		motoDeploy(t, path)
	})
}

// deployBypassingChecks deploys the file's template with the deployer
// alone, without the zone and certificate checks moat deploy makes, to
// see what the emulator itself answers.
func deployBypassingChecks(t *testing.T, cl *awsdeploy.Clients, path string, params map[string]string, rewrite *strings.Replacer) error {
	t.Helper()
	p, err := loadPlan(path, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	tmpl, err := awscfn.Render(p, awscfn.Options{})
	if err != nil {
		t.Fatal(err)
	}
	body, err := tmpl.JSON()
	if err != nil {
		t.Fatal(err)
	}
	if rewrite != nil {
		body = []byte(rewrite.Replace(string(body)))
	}
	d := &awsdeploy.Deployer{CloudFormation: cl.CloudFormation, S3: cl.S3, STS: cl.STS, SSM: cl.SSM, Region: cl.Region, Poll: 50 * time.Millisecond}
	spec := awsdeploy.Spec{StackName: p.Stack, Template: body, Parameters: params, Images: awscfn.ImageParameters(p)}
	_, err = d.Deploy(motoCtx(t), spec)
	return err
}

func noStack(t *testing.T, cl *awsdeploy.Clients, name string) {
	t.Helper()
	out, err := cl.CloudFormation.DescribeStacks(motoCtx(t), &cloudformation.DescribeStacksInput{StackName: aws.String(name)})
	if err == nil {
		t.Errorf("stack %s exists: %s", name, out.Stacks[0].StackStatus)
	}
}

// selfSigned is a certificate and key (PEM) to import into ACM.
func selfSigned(t *testing.T) ([]byte, []byte) {
	t.Helper()
	c, err := lb.SelfSigned()
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(c.PrivateKey)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Certificate[0]}), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
}

// TestDeployShipsAppThroughS3 deploys with --bucket against moto: the
// app's files go to the bucket as a content-addressed bundle and the stack
// gets its key as parameters.
func TestDeployShipsAppThroughS3(t *testing.T) {
	m := startMoto(t)
	motoEnv(t, m)
	path := copyExample(t)
	cl := motoClients(t, "us-east-1")
	args := []string{"deploy", "-f", path, "-y", "--bucket", "my-assets", "--poll-interval=50ms"}

	_, stderr, code := run(t, args...)
	if code != exitFailure || !strings.Contains(stderr, "bucket my-assets is not usable") {
		t.Errorf("missing bucket: exit %d\n%s", code, stderr)
	}
	noStack(t, cl, "realtime")

	if _, err := cl.S3.CreateBucket(motoCtx(t), &s3.CreateBucketInput{Bucket: aws.String("my-assets")}); err != nil {
		t.Fatal(err)
	}
	_, stderr, code = run(t, args...)
	if code != 0 {
		t.Fatalf("deploy: exit %d\n%s", code, stderr)
	}
	bundle, err := awscfn.Bundle(filepath.Join(filepath.Dir(path), "app"))
	if err != nil {
		t.Fatal(err)
	}
	key := awsdeploy.BundleKey("realtime", "app", bundle)
	obj, err := cl.S3.GetObject(motoCtx(t), &s3.GetObjectInput{Bucket: aws.String("my-assets"), Key: aws.String(key)},
		func(o *s3.Options) { o.DisableLogOutputChecksumValidationSkipped = true })
	if err != nil {
		t.Fatalf("bundle not at s3://my-assets/%s: %v", key, err)
	}
	got, _ := io.ReadAll(obj.Body)
	obj.Body.Close()
	if !bytes.Equal(got, bundle) {
		t.Errorf("s3://my-assets/%s holds %d bytes, want the %d-byte bundle", key, len(got), len(bundle))
	}
	st, err := cl.CloudFormation.DescribeStacks(motoCtx(t), &cloudformation.DescribeStacksInput{StackName: aws.String("realtime")})
	if err != nil {
		t.Fatal(err)
	}
	params := map[string]string{}
	for _, p := range st.Stacks[0].Parameters {
		params[aws.ToString(p.ParameterKey)] = aws.ToString(p.ParameterValue)
	}
	if params["AppAssetBucket"] != "my-assets" || params["AppAssetKey"] != key {
		t.Errorf("stack parameters %v, want AppAssetBucket=my-assets AppAssetKey=%s", params, key)
	}
	if !strings.Contains(stderr, "s3://my-assets/"+key) {
		t.Errorf("stderr:\n%s", stderr)
	}
}

// The image is resolved from SSM once, when the stack is created, and kept
// on updates (UsePreviousValue) even when the parameter moves on, until
// moat deploy --update-image. The file names its own SSM path, so the test
// can move it (moto's Amazon Linux parameters cannot be overwritten).
func TestDeployKeepsImageAgainstMoto(t *testing.T) {
	m := startMoto(t)
	motoEnv(t, m)
	cl := motoClients(t, "us-east-1")
	imgs, err := cl.EC2.DescribeImages(motoCtx(t), &ec2.DescribeImagesInput{Filters: []ec2types.Filter{{Name: aws.String("architecture"), Values: []string{"x86_64"}}}})
	if err != nil || len(imgs.Images) < 2 {
		t.Fatalf("moto's images: %v (%d)", err, len(imgs.Images))
	}
	first, second := aws.ToString(imgs.Images[0].ImageId), aws.ToString(imgs.Images[1].ImageId)
	const path = "/moat-test/app-image"
	put := func(v string) {
		t.Helper()
		if _, err := cl.SSM.PutParameter(motoCtx(t), &ssm.PutParameterInput{Name: aws.String(path), Value: aws.String(v), Type: ssmtypes.ParameterTypeString, Overwrite: aws.Bool(true)}); err != nil {
			t.Fatal(err)
		}
	}
	deployed := func() (param, lt string) {
		t.Helper()
		st, err := cl.CloudFormation.DescribeStacks(motoCtx(t), &cloudformation.DescribeStacksInput{StackName: aws.String("realtime")})
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range st.Stacks[0].Parameters {
			if aws.ToString(p.ParameterKey) == "ImageIdX8664" {
				param = aws.ToString(p.ParameterValue)
			}
		}
		res := stackResources(t, cl, "realtime")
		v, err := cl.EC2.DescribeLaunchTemplateVersions(motoCtx(t), &ec2.DescribeLaunchTemplateVersionsInput{LaunchTemplateId: aws.String(one(t, res, "AWS::EC2::LaunchTemplate")), Versions: []string{"$Latest"}})
		if err != nil || len(v.LaunchTemplateVersions) != 1 {
			t.Fatalf("launch template: %v", err)
		}
		return param, aws.ToString(v.LaunchTemplateVersions[0].LaunchTemplateData.ImageId)
	}

	put(first)
	file := copyExample(t, "aws:\n  region: us-east-1\n", "aws:\n  region: us-east-1\n  ami: "+path+"\n")
	_, stderr := motoDeploy(t, file)
	if !strings.Contains(stderr, "image for x86_64: "+first+" (resolved, from "+path+")") {
		t.Errorf("create did not say which image it resolved:\n%s", stderr)
	}
	if p, lt := deployed(); p != first || lt != first {
		t.Fatalf("after create: parameter %s, launch template %s, want %s", p, lt, first)
	}

	// A newer image is published; the file changes elsewhere: kept.
	put(second)
	edited, _ := os.ReadFile(file)
	os.WriteFile(file, []byte(strings.Replace(string(edited), "desiredCapacity: 2", "desiredCapacity: 3", 1)), 0o644)
	_, stderr = motoDeploy(t, file)
	if !strings.Contains(stderr, "image for x86_64: "+first+", kept from the last deploy") || strings.Contains(stderr, "LaunchTemplateApp") {
		t.Errorf("update did not keep the image (or touched the launch template):\n%s", stderr)
	}
	if p, lt := deployed(); p != first || lt != first {
		t.Errorf("after update: parameter %s, launch template %s, want the kept %s", p, lt, first)
	}

	// --update-image takes the newer one.
	_, stderr = motoDeploy(t, file, "--update-image")
	if !strings.Contains(stderr, "image for x86_64: "+second+" (updated from "+first+", from "+path+")") {
		t.Errorf("--update-image:\n%s", stderr)
	}
	if !strings.Contains(stderr, "Modify  LaunchTemplateApp") {
		t.Logf("moto limit: its change set lists no resource change when only a parameter's value changes (AWS: Modify LaunchTemplateApp and BastionInstance); the update applies it all the same")
	}
	if p, lt := deployed(); p != second || lt != second {
		t.Errorf("after --update-image: parameter %s, launch template %s, want %s", p, lt, second)
	}

	// The file names another image source: resolved, not kept.
	const other = "/moat-test/other-image"
	if _, err := cl.SSM.PutParameter(motoCtx(t), &ssm.PutParameterInput{Name: aws.String(other), Value: aws.String(first), Type: ssmtypes.ParameterTypeString}); err != nil {
		t.Fatal(err)
	}
	edited, _ = os.ReadFile(file)
	os.WriteFile(file, []byte(strings.Replace(string(edited), "ami: "+path, "ami: "+other, 1)), 0o644)
	_, stderr = motoDeploy(t, file)
	if !strings.Contains(stderr, "image for x86_64: "+first+" (updated from "+second+", from "+other+")") {
		t.Errorf("a new aws.ami was not resolved:\n%s", stderr)
	}
	if p, lt := deployed(); p != first || lt != first {
		t.Errorf("after changing aws.ami: parameter %s, launch template %s, want %s", p, lt, first)
	}
}
