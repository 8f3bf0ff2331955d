// Package plan resolves a validated stack file into the plan both targets
// consume: every subnet with its gateway and address range, every security
// group rule resolved, every endpoint with its address, and what runs
// where. Build is a pure function; the local runtime (package daemon) and
// the CloudFormation renderer (package cloud/aws) read only the plan.
package plan

import (
	"fmt"
	"net/netip"
	"strconv"
	"time"

	"github.com/moat-dev/moat/internal/awsrules"
	"github.com/moat-dev/moat/internal/spec"
)

// Plan is a resolved stack.
type Plan struct {
	Stack       string       `json:"stack"`
	Description string       `json:"description,omitempty"`
	VPC         VPC          `json:"vpc"`
	Zones       []Zone       `json:"zones"`
	Subnets     []Subnet     `json:"subnets"`
	RouteTables []RouteTable `json:"routeTables"`
	NATGateways []NATGateway `json:"natGateways"`
	// SecurityGroups with their rules resolved.
	SecurityGroups []SecurityGroup `json:"securityGroups"`
	// NetworkACLs are the custom network ACLs, entries sorted by rule number.
	NetworkACLs       []NetworkACL       `json:"networkAcls,omitempty"`
	KeyPairs          []KeyPair          `json:"keyPairs"`
	Bastion           *Bastion           `json:"bastion,omitempty"`
	LaunchTemplates   []LaunchTemplate   `json:"launchTemplates"`
	TargetGroups      []TargetGroup      `json:"targetGroups"`
	AutoScalingGroups []AutoScalingGroup `json:"autoScalingGroups"`
	LoadBalancers     []LoadBalancer     `json:"loadBalancers"`
	// Experiments are AWS FIS experiment templates kept with the stack.
	Experiments []Experiment `json:"experiments,omitempty"`
	// Endpoints are what moat publishes on loopback (local) and what AWS
	// exposes publicly.
	Endpoints []Endpoint `json:"endpoints"`
	Local     Local      `json:"local"`
	AWS       AWS        `json:"aws"`
}

// VPC is the network's block.
type VPC struct {
	CIDR netip.Prefix `json:"cidr"`
}

// Zone is an availability zone.
type Zone struct {
	// Name as written in the stack file ("a").
	Name string `json:"name"`
	// AWSName is the full zone name ("us-east-1a").
	AWSName string `json:"awsName"`
	Index   int    `json:"index"`
}

// Subnet is a subnet with its addresses. AWS reserves the first four
// addresses and the last; moat does the same: network, router (gateway),
// DNS, future use, broadcast.
type Subnet struct {
	Name       string       `json:"name"`
	Zone       string       `json:"zone"`
	Public     bool         `json:"public"`
	CIDR       netip.Prefix `json:"cidr"`
	Gateway    netip.Addr   `json:"gateway"`
	DNS        netip.Addr   `json:"dns"`
	FirstHost  netip.Addr   `json:"firstHost"` // first assignable address
	LastHost   netip.Addr   `json:"lastHost"`  // last assignable address
	RouteTable string       `json:"routeTable"`
	// NetworkACL names the subnet's custom network ACL; empty means the
	// VPC's default one, which allows everything.
	NetworkACL string `json:"networkAcl,omitempty"`
	// Static are addresses the plan assigns to fixed nodes in this subnet
	// (load balancer nodes, bastion, NAT gateway); instances get addresses
	// from the rest of the range at run time.
	Static []StaticAddress `json:"static,omitempty"`
}

// StaticAddress is a fixed node's address.
type StaticAddress struct {
	Addr netip.Addr `json:"addr"`
	Node string     `json:"node"` // e.g. "lb/web", "bastion", "nat/a"
}

// RouteTable is a route table and the subnets it is associated with.
type RouteTable struct {
	Name    string   `json:"name"`
	Subnets []string `json:"subnets"`
	Routes  []Route  `json:"routes"`
}

// Route targets.
const (
	TargetLocal           = "local"
	TargetInternetGateway = "igw"
	TargetNAT             = "nat" // Route.NAT names the gateway
)

// Route is one route: destination and target.
type Route struct {
	Destination netip.Prefix `json:"destination"`
	Target      string       `json:"target"`
	NAT         string       `json:"nat,omitempty"`
}

// NATGateway gives private subnets outbound access.
type NATGateway struct {
	Name    string     `json:"name"`
	Zone    string     `json:"zone"`
	Subnet  string     `json:"subnet"` // a public subnet
	Address netip.Addr `json:"address"`
}

// SecurityGroup is a group with resolved rules.
type SecurityGroup struct {
	Name        string `json:"name"`
	Description string `json:"description"`
	Ingress     []Rule `json:"ingress"`
	Egress      []Rule `json:"egress"`
}

// Protocols of a rule.
const (
	ProtoTCP  = "tcp"
	ProtoUDP  = "udp"
	ProtoICMP = "icmp"
	ProtoAll  = "all"
)

// Rule allows traffic with a peer: a CIDR block or the members of a group.
// FromPort/ToPort are 0/65535 for "all ports" and 0/0 for protocols
// without ports.
type Rule struct {
	Protocol    string       `json:"protocol"`
	FromPort    int          `json:"fromPort"`
	ToPort      int          `json:"toPort"`
	CIDR        netip.Prefix `json:"cidr,omitzero"`
	Group       string       `json:"group,omitempty"`
	Description string       `json:"description,omitempty"`
}

// Peer describes the rule's peer for humans.
func (r Rule) Peer() string {
	if r.Group != "" {
		return "sg:" + r.Group
	}
	return r.CIDR.String()
}

// Covers reports whether the rule's protocol and ports include proto/port.
func (r Rule) Covers(proto string, port int) bool {
	if r.Protocol == ProtoAll {
		return true
	}
	if r.Protocol != proto {
		return false
	}
	if proto == ProtoICMP {
		return true
	}
	return r.FromPort <= port && port <= r.ToPort
}

// NetworkACL is a stateless firewall at the boundary of its subnets.
type NetworkACL struct {
	Name    string   `json:"name"`
	Subnets []string `json:"subnets"`
	// Inbound and Outbound are sorted by rule number, the order AWS
	// evaluates them in.
	Inbound  []ACLEntry `json:"inbound"`
	Outbound []ACLEntry `json:"outbound"`
}

// ACLEntry is one numbered network ACL rule. Its Rule gives protocol,
// destination ports and the peer block (source inbound, destination
// outbound); Group and Description are unused.
type ACLEntry struct {
	RuleNumber int `json:"ruleNumber"`
	Rule
	Allow bool `json:"allow"`
}

// Action is "allow" or "deny".
func (e ACLEntry) Action() string {
	if e.Allow {
		return "allow"
	}
	return "deny"
}

// String is the entry as AWS's console lists it: "120 deny tcp 22 0.0.0.0/0".
func (e ACLEntry) String() string {
	ports := "all"
	switch {
	case e.Protocol != ProtoTCP && e.Protocol != ProtoUDP:
	case e.FromPort == e.ToPort:
		ports = strconv.Itoa(e.FromPort)
	case e.FromPort != 0 || e.ToPort != 65535:
		ports = fmt.Sprintf("%d-%d", e.FromPort, e.ToPort)
	}
	return fmt.Sprintf("%d %s %s %s %s", e.RuleNumber, e.Action(), e.Protocol, ports, e.CIDR)
}

// Decide evaluates the ACL as AWS does (awsrules.DecideACL) for packets
// of proto to destination ports lo-hi (0, 0 for icmp and all) whose peer
// (source when inbound, destination when outbound) is addr.
func (a NetworkACL) Decide(outbound bool, proto string, addr netip.Addr, lo, hi int) awsrules.ACLDecision {
	entries := a.Inbound
	if outbound {
		entries = a.Outbound
	}
	return awsrules.DecideACL(ACLEntries(entries), proto, addr, lo, hi)
}

// ACLEntries converts entries to awsrules' form.
func ACLEntries(entries []ACLEntry) []awsrules.ACLEntry {
	out := make([]awsrules.ACLEntry, 0, len(entries))
	for _, e := range entries {
		out = append(out, awsrules.ACLEntry{RuleNumber: e.RuleNumber, Protocol: e.Protocol, FromPort: e.FromPort, ToPort: e.ToPort, CIDR: e.CIDR, Allow: e.Allow})
	}
	return out
}

// Entry returns the entry with that rule number in one direction.
func (a NetworkACL) Entry(outbound bool, n int) (ACLEntry, bool) {
	entries := a.Inbound
	if outbound {
		entries = a.Outbound
	}
	for _, e := range entries {
		if e.RuleNumber == n {
			return e, true
		}
	}
	return ACLEntry{}, false
}

// KeyPair is an SSH key pair to generate or import.
type KeyPair struct {
	Name string `json:"name"`
	Type string `json:"type"`
	// PublicKeyFile is absolute, or empty when moat generates the key.
	PublicKeyFile string `json:"publicKeyFile,omitempty"`
}

// Bastion is the SSH jump host.
type Bastion struct {
	Subnet         string         `json:"subnet"`
	Zone           string         `json:"zone"`
	Address        netip.Addr     `json:"address"`
	KeyPair        string         `json:"keyPair"`
	SecurityGroups []string       `json:"securityGroups"`
	AllowedCIDRs   []netip.Prefix `json:"allowedCidrs"`
	User           string         `json:"user"`
	InstanceType   string         `json:"instanceType"`
	// Publish is the loopback address the bastion listens on locally.
	Publish netip.AddrPort `json:"publish"`
}

// LaunchTemplate is what an instance runs.
type LaunchTemplate struct {
	Name        string            `json:"name"`
	Command     string            `json:"command"`
	UserData    string            `json:"userData,omitempty"`
	FilesDir    string            `json:"filesDir,omitempty"` // absolute
	Environment map[string]string `json:"environment,omitempty"`
	Port        int               `json:"port"`
	// SecurityGroups of the instances.
	SecurityGroups []string `json:"securityGroups"`
	KeyPair        string   `json:"keyPair,omitempty"`
	InstanceType   string   `json:"instanceType"`
	// AWSInstanceType is the type used on AWS (aws.instanceTypes override).
	AWSInstanceType string `json:"awsInstanceType"`
	User            string `json:"user"`
	// Version changes whenever anything above changes (a content hash),
	// so instance refresh can find instances of an older version.
	Version string `json:"version"`
}

// TargetGroup with every setting resolved.
type TargetGroup struct {
	Name                string        `json:"name"`
	Protocol            string        `json:"protocol"`
	Port                int           `json:"port"`
	HealthCheck         HealthCheck   `json:"healthCheck"`
	DeregistrationDelay time.Duration `json:"deregistrationDelay"`
	SlowStart           time.Duration `json:"slowStart"`
	Algorithm           string        `json:"algorithm"`
	Stickiness          *Stickiness   `json:"stickiness,omitempty"`
	// AutoScalingGroups that register their instances here.
	AutoScalingGroups []string `json:"autoScalingGroups,omitempty"`
}

// HealthCheck of a target group.
type HealthCheck struct {
	Protocol           string        `json:"protocol"`
	Path               string        `json:"path"`
	Port               int           `json:"port"` // 0 means the traffic port
	Interval           time.Duration `json:"interval"`
	Timeout            time.Duration `json:"timeout"`
	HealthyThreshold   int           `json:"healthyThreshold"`
	UnhealthyThreshold int           `json:"unhealthyThreshold"`
	Matcher            string        `json:"matcher"`
}

// Stickiness of a target group.
type Stickiness struct {
	Type       string        `json:"type"`
	Duration   time.Duration `json:"duration"`
	CookieName string        `json:"cookieName,omitempty"`
}

// AutoScalingGroup with every setting resolved.
type AutoScalingGroup struct {
	Name           string   `json:"name"`
	LaunchTemplate string   `json:"launchTemplate"`
	Subnets        []string `json:"subnets"`
	// Zones of the subnets, in subnet order (one entry per subnet).
	Zones                            []string        `json:"zones"`
	MinSize                          int             `json:"minSize"`
	MaxSize                          int             `json:"maxSize"`
	DesiredCapacity                  int             `json:"desiredCapacity"`
	HealthCheckType                  string          `json:"healthCheckType"`
	HealthCheckGracePeriod           time.Duration   `json:"healthCheckGracePeriod"`
	TargetGroups                     []string        `json:"targetGroups,omitempty"`
	DefaultCooldown                  time.Duration   `json:"defaultCooldown"`
	DefaultInstanceWarmup            time.Duration   `json:"defaultInstanceWarmup"`
	NewInstancesProtectedFromScaleIn bool            `json:"newInstancesProtectedFromScaleIn,omitempty"`
	ScalingPolicies                  []ScalingPolicy `json:"scalingPolicies,omitempty"`
	MinHealthyPercentage             int             `json:"minHealthyPercentage"`
	RefreshWarmup                    time.Duration   `json:"refreshWarmup"`
}

// ScalingPolicy is resolved from the spec.
type ScalingPolicy struct {
	Name           string        `json:"name"`
	Type           string        `json:"type"`
	Metric         string        `json:"metric"`
	TargetGroup    string        `json:"targetGroup,omitempty"`
	TargetValue    float64       `json:"targetValue,omitempty"`
	DisableScaleIn bool          `json:"disableScaleIn,omitempty"`
	Warmup         time.Duration `json:"warmup"`
	Alarm          *spec.Alarm   `json:"alarm,omitempty"`
	AdjustmentType string        `json:"adjustmentType,omitempty"`
	Steps          []spec.Step   `json:"steps,omitempty"`
}

// LoadBalancer is an application load balancer with one node per subnet.
type LoadBalancer struct {
	Name           string        `json:"name"`
	Nodes          []LBNode      `json:"nodes"`
	SecurityGroups []string      `json:"securityGroups"`
	IdleTimeout    time.Duration `json:"idleTimeout"`
	Listeners      []Listener    `json:"listeners"`
}

// LBNode is the load balancer's presence in one public subnet: the address
// its connections to targets leave from.
type LBNode struct {
	Subnet  string     `json:"subnet"`
	Zone    string     `json:"zone"`
	Address netip.Addr `json:"address"`
}

// Listener is resolved; rules are sorted by priority.
type Listener struct {
	Port          int                 `json:"port"`
	Protocol      string              `json:"protocol"`
	Certificate   *spec.Certificate   `json:"certificate,omitempty"` // files absolute
	DefaultAction spec.Action         `json:"defaultAction"`
	Rules         []spec.ListenerRule `json:"rules,omitempty"`
	// Publish is the loopback address the listener is published on locally.
	Publish netip.AddrPort `json:"publish"`
}

// Experiment is an AWS FIS experiment template of the stack.
type Experiment struct {
	Name string `json:"name"`
	// Template is the template file's absolute path.
	Template string `json:"template"`
}

// Endpoint kinds.
const (
	EndpointListener = "listener"
	EndpointBastion  = "bastion"
	EndpointMetrics  = "metrics"
	EndpointConsole  = "console"
)

// Endpoint is something reachable from "the internet" (locally: loopback).
type Endpoint struct {
	Kind    string         `json:"kind"`
	Name    string         `json:"name"` // e.g. "web:80", "bastion"
	Publish netip.AddrPort `json:"publish"`
	// Target is what it forwards to inside the VPC, for humans.
	Target string `json:"target"`
	// URL is how a user reaches it locally: http(s)://… or an ssh command.
	URL string `json:"url"`
}

// Local runtime settings.
type Local struct {
	Egress       bool           `json:"egress"`
	Metrics      netip.AddrPort `json:"metrics"`
	MetricPeriod time.Duration  `json:"metricPeriod"`
	// Console is where the live web console listens (package console).
	Console netip.AddrPort `json:"console"`
	// Isolation of the instances: "machine" or "process" (spec.Local).
	Isolation string `json:"isolation"`
}

// AWS renderer settings.
type AWS struct {
	Region      string `json:"region"`
	AMI         string `json:"ami"`
	AssetBucket string `json:"assetBucket,omitempty"`
}
