package awsdeploy

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/autoscaling"
	"github.com/aws/aws-sdk-go-v2/service/cloudformation"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	elbv2 "github.com/aws/aws-sdk-go-v2/service/elasticloadbalancingv2"
)

// After CloudFormation says CREATE_COMPLETE the stack is built, not yet
// known to work: deploy then waits for the load balancer's targets to be
// healthy, makes one request to the load balancer, and prints how to SSH
// in. The decisions (when targets are ready, how they read) are pure.

// TargetHealth is one target of a deployed target group, as ELBv2
// DescribeTargetHealth reports it (and as moat targets shows a local one).
type TargetHealth struct {
	TargetGroup string `json:"targetGroup"` // the target group's logical id
	ID          string `json:"id"`
	Port        int32  `json:"port"`
	State       string `json:"state"` // initial, healthy, unhealthy, unused, draining, unavailable
	Reason      string `json:"reason,omitempty"`
	Description string `json:"description,omitempty"`
}

func (t TargetHealth) String() string {
	s := fmt.Sprintf("%s %s", t.ID, t.State)
	if t.Reason != "" {
		s += " (" + t.Reason
		if t.Description != "" {
			s += ": " + t.Description
		}
		s += ")"
	}
	return s
}

// TargetsReady decides whether every target group has a healthy target and
// no target still on its way (initial) or failing (unhealthy); draining
// and unused targets (being replaced, or in a zone the load balancer does
// not serve) do not count. It returns one line per target group that is
// not ready, naming its targets that are not healthy.
func TargetsReady(groups []string, targets []TargetHealth) (bool, []string) {
	var notReady []string
	for _, g := range groups {
		healthy, total := 0, 0
		var bad []string
		for _, t := range targets {
			if t.TargetGroup != g {
				continue
			}
			switch t.State {
			case "healthy":
				healthy++
				total++
			case "draining", "unused":
			default:
				total++
				bad = append(bad, t.String())
			}
		}
		switch {
		case total == 0:
			notReady = append(notReady, g+": no targets registered yet")
		case len(bad) > 0 || healthy == 0:
			notReady = append(notReady, fmt.Sprintf("%s: %d of %d healthy; %s", g, healthy, total, strings.Join(bad, ", ")))
		}
	}
	return len(notReady) == 0, notReady
}

// stackResources returns the physical ids of the stack's resources of a
// type, by logical id.
func (d *Deployer) stackResources(ctx context.Context, stack, typ string) (map[string]string, error) {
	out := map[string]string{}
	var token *string
	for {
		page, err := d.CloudFormation.ListStackResources(ctx, &cloudformation.ListStackResourcesInput{StackName: aws.String(stack), NextToken: token})
		if err != nil {
			return nil, credentialsTrouble(fmt.Errorf("list the resources of stack %s: %w", stack, apiError(err)))
		}
		for _, r := range page.StackResourceSummaries {
			if aws.ToString(r.ResourceType) == typ && aws.ToString(r.PhysicalResourceId) != "" {
				out[aws.ToString(r.LogicalResourceId)] = aws.ToString(r.PhysicalResourceId)
			}
		}
		if page.NextToken == nil {
			return out, nil
		}
		token = page.NextToken
	}
}

// Targets returns the health of every target of the stack's target groups.
func (d *Deployer) Targets(ctx context.Context, stack string) ([]string, []TargetHealth, error) {
	if d.ELBv2 == nil {
		return nil, nil, errors.New("no ELBv2 client to read target health")
	}
	tgs, err := d.stackResources(ctx, stack, "AWS::ElasticLoadBalancingV2::TargetGroup")
	if err != nil {
		return nil, nil, err
	}
	var groups []string
	for id := range tgs {
		groups = append(groups, id)
	}
	sort.Strings(groups)
	var all []TargetHealth
	for _, g := range groups {
		out, err := d.ELBv2.DescribeTargetHealth(ctx, &elbv2.DescribeTargetHealthInput{TargetGroupArn: aws.String(tgs[g])})
		if err != nil {
			return nil, nil, credentialsTrouble(fmt.Errorf("target health of %s: %w", g, apiError(err)))
		}
		for _, h := range out.TargetHealthDescriptions {
			th := TargetHealth{TargetGroup: g}
			if h.Target != nil {
				th.ID, th.Port = aws.ToString(h.Target.Id), aws.ToInt32(h.Target.Port)
			}
			if h.TargetHealth != nil {
				th.State, th.Reason, th.Description = string(h.TargetHealth.State), string(h.TargetHealth.Reason), aws.ToString(h.TargetHealth.Description)
			}
			all = append(all, th)
		}
	}
	sort.Slice(all, func(i, j int) bool {
		if all[i].TargetGroup != all[j].TargetGroup {
			return all[i].TargetGroup < all[j].TargetGroup
		}
		return all[i].ID < all[j].ID
	})
	return groups, all, nil
}

// NotHealthyError says the targets did not become healthy in time.
type NotHealthyError struct {
	Stack    string
	Waited   time.Duration
	NotReady []string
}

func (e *NotHealthyError) Error() string {
	return fmt.Sprintf("stack %s deployed, but its targets are not healthy after %s:\n  %s\n  CloudFormation finished; the instances run but do not pass the health check: see `moat ssh-config --aws` to log in, and the app's log on an instance",
		e.Stack, e.Waited, strings.Join(e.NotReady, "\n  "))
}

// WaitHealthy waits, at most timeout, until every target group of the
// stack that expect accepts (by logical id; nil: all) has healthy targets
// (TargetsReady), printing each change. A target group that no running
// group registers in would never be ready: leave it out.
func (d *Deployer) WaitHealthy(ctx context.Context, stack string, expect func(logicalID string) bool, timeout time.Duration) ([]TargetHealth, error) {
	start := time.Now()
	wctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	last := ""
	var targets []TargetHealth
	notReady := []string{"no answer about the targets yet"}
	for {
		groups, ts, err := d.Targets(wctx, stack)
		if expect != nil {
			groups = slices.DeleteFunc(groups, func(g string) bool { return !expect(g) })
		}
		switch {
		case err != nil && wctx.Err() == nil:
			return nil, err
		case err == nil && len(groups) == 0:
			return nil, nil
		case err == nil:
			targets = ts
			var ready bool
			ready, notReady = TargetsReady(groups, targets)
			line := "targets: " + strings.Join(notReady, "; ")
			if ready {
				var counts []string
				for _, g := range groups {
					n := 0
					for _, t := range targets {
						if t.TargetGroup == g && t.State == "healthy" {
							n++
						}
					}
					counts = append(counts, fmt.Sprintf("%s %d healthy", g, n))
				}
				line = "targets: " + strings.Join(counts, ", ")
			}
			if line != last {
				fmt.Fprintln(d.out(), line)
				last = line
			}
			if ready {
				return targets, nil
			}
			if sleep(wctx, d.poll()) == nil {
				continue
			}
		}
		// The wait ended: the time is up, or the caller stopped it.
		if ctx.Err() != nil {
			return nil, fmt.Errorf("stopped waiting for the targets of stack %s: %w", stack, ctx.Err())
		}
		return targets, &NotHealthyError{Stack: stack, Waited: time.Since(start).Round(time.Millisecond), NotReady: notReady}
	}
}

// ErrEmulated means a check was skipped because the calls go to an
// emulator, whose load balancer names do not resolve.
var ErrEmulated = errors.New("AWS calls go to a custom endpoint (AWS_ENDPOINT_URL, an emulator): its load balancer names are not real, so no request is made")

// Request makes one GET request to the load balancer's URL and returns
// the status line. It refuses (ErrEmulated) when the deployer talks to an
// emulator rather than AWS.
func (d *Deployer) Request(ctx context.Context, url string) (string, error) {
	if d.Emulated {
		return "", ErrEmulated
	}
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return "", err
	}
	start := time.Now()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return "", fmt.Errorf("GET %s: %w", url, err)
	}
	resp.Body.Close()
	status := fmt.Sprintf("GET %s: %s in %s", url, resp.Status, time.Since(start).Round(time.Millisecond))
	if resp.StatusCode >= 500 {
		return status, fmt.Errorf("%s: the load balancer answers, but not with the app", status)
	}
	return status, nil
}

// SSHHost is an instance of a deployed stack.
type SSHHost struct {
	ID        string
	Group     string // the auto scaling group's logical id ("" for the bastion)
	PrivateIP netip.Addr
	PublicIP  netip.Addr
}

// SSHHosts returns the stack's bastion (public address) and the instances
// of its auto scaling groups (private addresses).
func (d *Deployer) SSHHosts(ctx context.Context, stack string) (*SSHHost, []SSHHost, error) {
	if d.EC2 == nil || d.AutoScaling == nil {
		return nil, nil, errors.New("no EC2 and Auto Scaling clients to find the stack's instances")
	}
	bastions, err := d.stackResources(ctx, stack, "AWS::EC2::Instance")
	if err != nil {
		return nil, nil, err
	}
	groups, err := d.stackResources(ctx, stack, "AWS::AutoScaling::AutoScalingGroup")
	if err != nil {
		return nil, nil, err
	}
	byID := map[string]string{} // instance id -> group logical id
	var ids []string
	var bastionID string
	for _, id := range bastions {
		bastionID = id
		ids = append(ids, id)
	}
	for logical, name := range groups {
		out, err := d.AutoScaling.DescribeAutoScalingGroups(ctx, &autoscaling.DescribeAutoScalingGroupsInput{AutoScalingGroupNames: []string{name}})
		if err != nil {
			return nil, nil, credentialsTrouble(fmt.Errorf("describe auto scaling group %s: %w", name, apiError(err)))
		}
		for _, g := range out.AutoScalingGroups {
			for _, in := range g.Instances {
				byID[aws.ToString(in.InstanceId)] = logical
				ids = append(ids, aws.ToString(in.InstanceId))
			}
		}
	}
	if len(ids) == 0 {
		return nil, nil, nil
	}
	out, err := d.EC2.DescribeInstances(ctx, &ec2.DescribeInstancesInput{InstanceIds: ids})
	if err != nil {
		return nil, nil, credentialsTrouble(fmt.Errorf("describe the stack's instances: %w", apiError(err)))
	}
	var bastion *SSHHost
	var hosts []SSHHost
	for _, r := range out.Reservations {
		for _, in := range r.Instances {
			if in.State != nil && in.State.Name != "running" && in.State.Name != "pending" {
				continue
			}
			h := SSHHost{ID: aws.ToString(in.InstanceId), Group: byID[aws.ToString(in.InstanceId)]}
			h.PrivateIP, _ = netip.ParseAddr(aws.ToString(in.PrivateIpAddress))
			h.PublicIP, _ = netip.ParseAddr(aws.ToString(in.PublicIpAddress))
			if h.ID == bastionID {
				bastion = &h
				continue
			}
			hosts = append(hosts, h)
		}
	}
	sort.Slice(hosts, func(i, j int) bool {
		if hosts[i].Group != hosts[j].Group {
			return hosts[i].Group < hosts[j].Group
		}
		return hosts[i].ID < hosts[j].ID
	})
	return bastion, hosts, nil
}
