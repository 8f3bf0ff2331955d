package spec

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const exampleDir = "../../examples/realtime"

// example returns the bundled example stack file's text.
func example(t testing.TB) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(exampleDir, "moat.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// explicitSubnets replaces automatic carving with the same subnets written out.
const explicitSubnets = `  nat: single
  subnets:
    - {name: public-a, zone: a, type: public, cidr: 10.0.0.0/24}
    - {name: public-b, zone: b, type: public, cidr: 10.0.1.0/24}
    - {name: private-a, zone: a, type: private, cidr: 10.0.128.0/24}
    - {name: private-b, zone: b, type: private, cidr: 10.0.129.0/24}
`

// naclBlock adds a custom network ACL on the private subnets to the example.
var naclBlock = []string{"\nbastion:\n", `
networkAcls:
  - name: private
    subnets: [private-a, private-b]
    inbound:
      - {ruleNumber: 100, protocol: tcp, portRange: 8000, cidr: 10.0.0.0/16, ruleAction: allow}
      - {ruleNumber: 110, protocol: tcp, portRange: 22, cidr: 10.0.0.0/16, ruleAction: allow}
      - {ruleNumber: 120, protocol: tcp, portRange: 1024-65535, cidr: 0.0.0.0/0, ruleAction: allow}
    outbound:
      - {ruleNumber: 100, protocol: all, cidr: 0.0.0.0/0, ruleAction: allow}

bastion:
`}

// withNACL returns edits that add naclBlock and then apply more.
func withNACL(more ...string) []string { return append(append([]string(nil), naclBlock...), more...) }

// edit applies old→new replacements (each old must occur) to src.
func edit(t testing.TB, src string, pairs ...string) string {
	t.Helper()
	for i := 0; i+1 < len(pairs); i += 2 {
		if !strings.Contains(src, pairs[i]) {
			t.Fatalf("edit: %q not found", pairs[i])
		}
		src = strings.Replace(src, pairs[i], pairs[i+1], 1)
	}
	return src
}

// check parses and validates src as if it were examples/realtime/moat.yaml.
func check(t testing.TB, src string) Problems {
	t.Helper()
	f, err := Parse("moat.yaml", []byte(src))
	if err != nil {
		var ps Problems
		if !errors.As(err, &ps) {
			t.Fatalf("Parse: %v is not Problems", err)
		}
		return ps
	}
	f.Dir = exampleDir
	return Validate(f)
}

// posOf returns the 1-based line and column of the first occurrence of
// needle in src.
func posOf(t testing.TB, src, needle string) (int, int) {
	t.Helper()
	i := strings.Index(src, needle)
	if i < 0 {
		t.Fatalf("posOf: %q not found", needle)
	}
	line := strings.Count(src[:i], "\n") + 1
	col := i - strings.LastIndex(src[:i], "\n")
	return line, col
}

func TestExampleIsValid(t *testing.T) {
	for _, src := range []string{example(t), edit(t, example(t), "  nat: single\n", explicitSubnets), edit(t, example(t), naclBlock...)} {
		if ps := check(t, src); len(ps) != 0 {
			t.Errorf("example has problems:\n%v", ps)
		}
	}
}

func TestValidate(t *testing.T) {
	type tc struct {
		name  string
		edits []string
		// want: a problem with this path whose message contains msg.
		path, msg string
		hint      string // substring of the hint, if set
		warning   bool
		// at: the problem's position is where this text starts in the edited file.
		at string
	}
	cases := []tc{
		{name: "vpc cidr syntax", edits: []string{"cidr: 10.0.0.0/16", "cidr: 10.0.0.300/16"},
			path: "vpc.cidr", msg: "is not an IPv4 CIDR block", hint: "10.0.0.0/16", at: "10.0.0.300/16"},
		{name: "vpc cidr too large", edits: []string{"cidr: 10.0.0.0/16", "cidr: 10.0.0.0/8"},
			path: "vpc.cidr", msg: "is /8", hint: "/16 to /28"},
		{name: "vpc cidr host bits", edits: []string{"cidr: 10.0.0.0/16", "cidr: 10.0.0.1/16"},
			path: "vpc.cidr", msg: "host bits", hint: "10.0.0.0/16"},
		{name: "vpc too small to carve", edits: []string{"cidr: 10.0.0.0/16", "cidr: 10.0.0.0/28"},
			path: "vpc.cidr", msg: "too small to carve"},
		{name: "subnet cidr syntax", edits: []string{"  nat: single\n", explicitSubnets, "cidr: 10.0.129.0/24", "cidr: 10.0.129.0/33"},
			path: "vpc.subnets[3].cidr", msg: "not an IPv4 CIDR block", at: "10.0.129.0/33"},
		{name: "subnet outside vpc", edits: []string{"  nat: single\n", explicitSubnets, "cidr: 10.0.129.0/24", "cidr: 10.1.0.0/24"},
			path: "vpc.subnets[3].cidr", msg: "outside the VPC block 10.0.0.0/16", hint: "inside 10.0.0.0/16", at: "10.1.0.0/24"},
		{name: "subnet overlap", edits: []string{"  nat: single\n", explicitSubnets, "cidr: 10.0.129.0/24", "cidr: 10.0.128.128/25"},
			path: "vpc.subnets[3].cidr", msg: "overlaps subnet private-a"},
		{name: "subnet host bits", edits: []string{"  nat: single\n", explicitSubnets, "cidr: 10.0.129.0/24", "cidr: 10.0.129.1/24"},
			path: "vpc.subnets[3].cidr", msg: "host bits"},
		{name: "instance type not EC2's", edits: []string{"instanceType: t3.micro", "instanceType: tiny"},
			path: "launchTemplates[0].instanceType", msg: `instance type "tiny" is not of EC2's form`, hint: "t4g.micro (arm64", at: "tiny"},
		{name: "aws instance type override not EC2's", edits: []string{"  region: us-east-1", "  region: us-east-1\n  instanceTypes: {app: large}"},
			path: "aws.instanceTypes.app", msg: `instance type "large"`, at: "app: large}"},
		{name: "ami not an image", edits: []string{"  region: us-east-1", "  region: us-east-1\n  ami: al2023"},
			path: "aws.ami", msg: `"al2023" is not an image id or SSM parameter path`, at: "al2023"},
		{name: "one image for two architectures", edits: []string{"  region: us-east-1", "  region: us-east-1\n  ami: ami-0123456789abcdef0",
			"instanceType: t3.micro", "instanceType: t4g.micro"},
			path: "aws.ami", msg: "bastion.instanceType is t3.micro (x86_64) and launchTemplates[0].instanceType is t4g.micro (arm64)",
			hint: "remove aws.ami", at: "ami-0123456789abcdef0"},
		{name: "rule description with an apostrophe", edits: []string{"port: 8000, group: lb}", "port: 8000, group: lb, description: \"the LB's traffic\"}"},
			path: "securityGroups[2].ingress[0].description", msg: `character "'" is not allowed`, hint: "a-z, A-Z, 0-9, spaces and ._-:/()#,@[]+=&;{}!$*", at: "\"the LB's"},
		{name: "group description with an accent", edits: []string{"description: operators to the bastion on SSH", "description: opérateurs"},
			path: "securityGroups[1].description", msg: `character "é" is not allowed`, at: "opérateurs"},
		{name: "zone letter the region lacks", edits: []string{"region: us-east-1", "region: ap-northeast-1"},
			path: "vpc.zones[1]", msg: "ap-northeast-1 has no zone b", hint: "a, c, d", at: "b]"},
		{name: "full zone name the region lacks", edits: []string{"zones: [a, b]", "zones: [us-east-1a, us-east-1g]", "  nat: single\n", "  nat: none\n"},
			path: "vpc.zones[1]", msg: "us-east-1 has no zone g", hint: "a, b, c, d, e, f", at: "us-east-1g"},
		{name: "region moat does not know", edits: []string{"region: us-east-1", "region: us-east-9"},
			path: "aws.region", msg: "region us-east-9 is not one moat knows", warning: true, at: "us-east-9"},
		{name: "https listener without an ACM certificate", edits: []string{"      - port: 80\n        protocol: HTTP\n", "      - port: 443\n        protocol: HTTPS\n", "listener: 80,", "listener: 443,"},
			path: "loadBalancers[0].listeners[0].protocol", msg: "on AWS an HTTPS listener needs an ACM certificate", hint: "certificate: {arn: arn:aws:acm:", warning: true, at: "HTTPS"},
		{name: "https listener with local files only", edits: []string{"      - port: 80\n        protocol: HTTP\n", "      - port: 443\n        protocol: HTTPS\n        certificate: {certFile: app/app.py, keyFile: app/app.py}\n", "listener: 80,", "listener: 443,"},
			path: "loadBalancers[0].listeners[0].certificate", msg: "local certificate files are not uploaded", warning: true, at: "{certFile"},
		{name: "load balancer subnet smaller than /27", edits: []string{"  nat: single\n", explicitSubnets, "name: public-b, zone: b, type: public, cidr: 10.0.1.0/24", "name: public-b, zone: b, type: public, cidr: 10.0.1.0/28"},
			path: "loadBalancers[0].subnets[1]", msg: "subnet public-b (10.0.1.0/28) is smaller than /27", hint: "/27 or larger", at: "public-b]"},
		{name: "no NAT: no health-gated rollout on AWS", edits: []string{"nat: single", "nat: none"},
			path: "vpc.nat", msg: "cannot reach CloudFormation", hint: "nat: single", warning: true, at: "none"},
		{name: "nacl duplicate rule number", edits: withNACL("ruleNumber: 110", "ruleNumber: 100"),
			path: "networkAcls[0].inbound[1].ruleNumber", msg: "rule number 100 is used twice in inbound", hint: "its own rule number", at: "100, protocol: tcp, portRange: 22"},
		{name: "nacl rule number too high", edits: withNACL("ruleNumber: 120", "ruleNumber: 32767"),
			path: "networkAcls[0].inbound[2].ruleNumber", msg: "rule number 32767 is out of range", hint: "1-32766", at: "32767"},
		{name: "nacl rule number zero", edits: withNACL("ruleNumber: 120", "ruleNumber: 0"),
			path: "networkAcls[0].inbound[2].ruleNumber", msg: "rule number 0 is out of range", at: "0, protocol: tcp, portRange: 1024"},
		{name: "nacl unknown subnet", edits: withNACL("subnets: [private-a, private-b]", "subnets: [private-a, privat-b]"),
			path: "networkAcls[0].subnets[1]", msg: `subnet "privat-b" is not defined`, hint: `did you mean "private-b"?`, at: "privat-b]"},
		{name: "nacl subnet twice", edits: withNACL("    outbound:\n", "    outbound:\n      - {ruleNumber: 100, cidr: 0.0.0.0/0, ruleAction: allow}\n  - name: other\n    subnets: [private-b]\n    outbound:\n"),
			path: "networkAcls[1].subnets[0]", msg: "subnet private-b is already associated with network ACL private", hint: "one network ACL", at: "private-b]\n    outbound"},
		{name: "nacl icmp with ports", edits: withNACL("protocol: all, cidr", "protocol: icmp, portRange: 8, cidr"),
			path: "networkAcls[0].outbound[0].portRange", msg: "protocol icmp has no ports", hint: "remove portRange", at: "8, cidr"},
		{name: "nacl port range backwards", edits: withNACL("portRange: 1024-65535", "portRange: 65535-1024"),
			path: "networkAcls[0].inbound[2].portRange", msg: "port 65535-1024 is out of range", at: "65535-1024"},
		{name: "nacl rule action", edits: withNACL("protocol: all, cidr: 0.0.0.0/0, ruleAction: allow", "protocol: all, cidr: 0.0.0.0/0, ruleAction: alow"),
			path: "networkAcls[0].outbound[0].ruleAction", msg: `rule action "alow" is not allow or deny`, hint: `did you mean "allow"?`, at: "alow"},
		{name: "nacl no cidr", edits: withNACL("protocol: all, cidr: 0.0.0.0/0, ruleAction", "protocol: all, ruleAction"),
			path: "networkAcls[0].outbound[0]", msg: "the entry has no cidr", hint: "0.0.0.0/0"},
		{name: "nacl bad cidr", edits: withNACL("portRange: 22, cidr: 10.0.0.0/16", "portRange: 22, cidr: 10.0.0/16"),
			path: "networkAcls[0].inbound[1].cidr", msg: `"10.0.0/16" is not an IPv4 CIDR block`, at: "10.0.0/16"},
		{name: "nacl unknown protocol", edits: withNACL("protocol: tcp, portRange: 22", "protocol: tpc, portRange: 22"),
			path: "networkAcls[0].inbound[1].protocol", msg: `protocol "tpc" is not known`, hint: `did you mean "tcp"?`, at: "tpc"},
		{name: "nacl blocks the targets' replies", edits: withNACL("protocol: all, cidr: 0.0.0.0/0, ruleAction: allow", "protocol: tcp, portRange: 8000, cidr: 0.0.0.0/0, ruleAction: allow"),
			path: "networkAcls[0].outbound", warning: true,
			msg:  "network ACL private blocks the targets' replies to load balancer web: tcp 1024-65535 to subnet public-a (10.0.0.0/24), where no entry allows them (rule * denies); network ACLs are stateless",
			hint: "add to outbound: {ruleNumber: 110, protocol: tcp, portRange: 1024-65535, cidr: 10.0.0.0/24, ruleAction: allow}"},
		{name: "nacl denies part of the ephemeral range", edits: withNACL("    outbound:\n", "    outbound:\n      - {ruleNumber: 50, protocol: tcp, portRange: 32768-60999, cidr: 10.0.1.0/24, ruleAction: deny}\n"),
			path: "networkAcls[0].outbound", warning: true, msg: "tcp 1024-65535 to subnet public-b (10.0.1.0/24), where rule 50 denies them",
			hint: "{ruleNumber: 49, protocol: tcp, portRange: 1024-65535, cidr: 10.0.1.0/24, ruleAction: allow}"},
		{name: "nacl on the load balancer's subnets without replies", edits: withNACL("  - name: private\n", `  - name: public
    subnets: [public-a, public-b]
    inbound:
      - {ruleNumber: 100, protocol: tcp, portRange: 80, cidr: 0.0.0.0/0, ruleAction: allow}
    outbound:
      - {ruleNumber: 100, protocol: tcp, portRange: 8000, cidr: 10.0.0.0/16, ruleAction: allow}
  - name: private
`),
			path: "networkAcls[0].inbound", warning: true, msg: "network ACL public blocks the targets' replies to load balancer web: tcp 1024-65535 from subnet private-a (10.0.128.0/24)",
			hint: "add to inbound: {ruleNumber: 110, protocol: tcp, portRange: 1024-65535, cidr: 10.0.128.0/24, ruleAction: allow}"},
		{name: "nacl on the load balancer's subnets without replies to clients", edits: withNACL("  - name: private\n", `  - name: public
    subnets: [public-a, public-b]
    inbound:
      - {ruleNumber: 100, protocol: tcp, portRange: 80, cidr: 0.0.0.0/0, ruleAction: allow}
      - {ruleNumber: 110, protocol: tcp, portRange: 1024-65535, cidr: 10.0.0.0/16, ruleAction: allow}
    outbound:
      - {ruleNumber: 100, protocol: tcp, portRange: 8000, cidr: 10.0.0.0/16, ruleAction: allow}
  - name: private
`),
			path: "networkAcls[0].outbound", warning: true, msg: "network ACL public blocks replies of load balancer web to its clients: tcp 1024-65535 to internet clients",
			hint: "add to outbound: {ruleNumber: 110, protocol: tcp, portRange: 1024-65535, cidr: 0.0.0.0/0, ruleAction: allow}"},
		{name: "zone digit", edits: []string{"zones: [a, b]", "zones: [a, 1]"},
			path: "vpc.zones[1]", msg: `zone "1" is not valid`, hint: "use a zone letter (a)"},
		{name: "unknown zone", edits: []string{"  nat: single\n", explicitSubnets, "zone: b, type: private", "zone: c, type: private"},
			path: "vpc.subnets[3].zone", msg: `zone "c" is not one of the VPC's zones`, at: "c, type: private"},
		{name: "subnet type", edits: []string{"  nat: single\n", explicitSubnets, "zone: b, type: private", "zone: b, type: privat"},
			path: "vpc.subnets[3].type", msg: "is not public or private"},
		{name: "nat mode", edits: []string{"nat: single", "nat: singel"},
			path: "vpc.nat", msg: "NAT mode", hint: `did you mean "single"?`},
		{name: "nat needs public subnet", edits: []string{"  nat: single\n", explicitSubnets, "name: public-a, zone: a", "name: public-a, zone: b"},
			path: "vpc.nat", msg: "needs a public subnet"},
		{name: "misspelt group reference", edits: []string{"port: 8000, group: lb}", "port: 8000, group: lbb}"},
			path: "securityGroups[2].ingress[0].group", msg: `security group "lbb" is not defined`, hint: `did you mean "lb"?`, at: "lbb}"},
		{name: "misspelt key pair reference", edits: []string{"  keyPair: ops", "  keyPair: opz"},
			path: "bastion.keyPair", msg: `key pair "opz" is not defined`, hint: `did you mean "ops"?`},
		{name: "misspelt subnet reference", edits: []string{"subnet: public-a", "subnet: publc-a"},
			path: "bastion.subnet", msg: `subnet "publc-a" is not defined`, hint: `did you mean "public-a"?`},
		{name: "misspelt launch template", edits: []string{"launchTemplate: app", "launchTemplate: apq"},
			path: "autoScalingGroups[0].launchTemplate", msg: `launch template "apq" is not defined`, hint: `did you mean "app"?`},
		{name: "misspelt target group", edits: []string{"forward: {targetGroup: web}", "forward: {targetGroup: wbe}"},
			path: "loadBalancers[0].listeners[0].defaultAction.forward.targetGroup", msg: `target group "wbe" is not defined`, hint: `did you mean "web"?`},
		{name: "reference with no close name", edits: []string{"securityGroups: [bastion]", "securityGroups: [zzzzzzzz]"},
			path: "bastion.securityGroups[0]", msg: "is not defined", hint: "use one of the defined security groups: lb, bastion, app"},
		{name: "unknown field with suggestion", edits: []string{"    minSize: 2", "    minSise: 2"},
			path: "autoScalingGroups[0].minSise", msg: `unknown field "minSise"`, hint: `did you mean "minSize"?`, at: "minSise"},
		{name: "unknown field without suggestion", edits: []string{"aws:\n", "colour: blue\naws:\n"},
			path: "colour", msg: `unknown field "colour"`, hint: "the fields allowed here are:"},
		{name: "field set twice", edits: []string{"    maxSize: 6", "    maxSize: 6\n    maxSize: 7"},
			path: "autoScalingGroups[0].maxSize", msg: "set twice"},
		{name: "wrong type number", edits: []string{"maxSize: 6", "maxSize: six"},
			path: "autoScalingGroups[0].maxSize", msg: `expected a whole number, found "six"`, at: "six"},
		{name: "wrong type list", edits: []string{"zones: [a, b]", "zones: a"},
			path: "vpc.zones", msg: "expected a list"},
		{name: "wrong type mapping", edits: []string{"vpc:\n  cidr", "vpc: 3\nx:\n  cidr"},
			path: "vpc", msg: "expected a mapping"},
		{name: "wrong type bool", edits: []string{"  metricPeriod: 15", "  metricPeriod: 15\n  egress: maybe"},
			path: "local.egress", msg: `expected true or false, found "maybe"`, at: "maybe"},
		{name: "unknown isolation", edits: []string{"  metricPeriod: 15", "  metricPeriod: 15\n  isolation: vm"},
			path: "local.isolation", msg: `isolation "vm" is not known`, at: "vm"},
		{name: "bad port range syntax", edits: []string{"port: 80, cidr", "port: eighty, cidr"},
			path: "securityGroups[0].ingress[0].port", msg: "is not a port"},
		{name: "rule port out of range", edits: []string{"port: 80, cidr", "port: 70000, cidr"},
			path: "securityGroups[0].ingress[0].port", msg: "port 70000 is out of range"},
		{name: "rule port range reversed", edits: []string{"port: 80, cidr", "port: 90-80, cidr"},
			path: "securityGroups[0].ingress[0].port", msg: "port 90-80 is out of range"},
		{name: "rule port with icmp", edits: []string{"protocol: tcp, port: 80", "protocol: icmp, port: 80"},
			path: "securityGroups[0].ingress[0].port", msg: "protocol icmp has no ports"},
		{name: "rule protocol", edits: []string{"protocol: tcp, port: 80", "protocol: tpc, port: 80"},
			path: "securityGroups[0].ingress[0].protocol", msg: `protocol "tpc" is not known`, hint: `did you mean "tcp"?`},
		{name: "rule without peer", edits: []string{"port: 80, cidr: 0.0.0.0/0}", "port: 80}"},
			path: "securityGroups[0].ingress[0]", msg: "the rule has no source"},
		{name: "rule with two peers", edits: []string{"port: 80, cidr: 0.0.0.0/0}", "port: 80, cidr: 0.0.0.0/0, group: app}"},
			path: "securityGroups[0].ingress[0]", msg: "both a cidr and a group"},
		{name: "rule cidr syntax", edits: []string{"port: 80, cidr: 0.0.0.0/0}", "port: 80, cidr: 0.0.0.0}"},
			path: "securityGroups[0].ingress[0].cidr", msg: "not an IPv4 CIDR block"},
		{name: "launch template port", edits: []string{"    port: 8000\n    environment", "    port: 70000\n    environment"},
			path: "launchTemplates[0].port", msg: "port 70000 is out of range"},
		{name: "launch template files", edits: []string{"files: app", "files: nope"},
			path: "launchTemplates[0].files", msg: "does not exist"},
		{name: "environment name", edits: []string{`PORT: "8000"`, `1PORT: "8000"`},
			path: "launchTemplates[0].environment.1PORT", msg: "not a valid environment variable name"},
		{name: "target group port", edits: []string{"    port: 8000\n    healthCheck", "    port: 70000\n    healthCheck"},
			path: "targetGroups[0].port", msg: "port 70000 is out of range"},
		{name: "health check interval", edits: []string{"intervalSeconds: 5", "intervalSeconds: 400"},
			path: "targetGroups[0].healthCheck.intervalSeconds", msg: "health check interval 400 is out of range", hint: "5 to 300", at: "400"},
		{name: "health check timeout range", edits: []string{"timeoutSeconds: 2", "timeoutSeconds: 1"},
			path: "targetGroups[0].healthCheck.timeoutSeconds", msg: "health check timeout 1 is out of range", hint: "2 to 120"},
		{name: "health check timeout not below interval", edits: []string{"timeoutSeconds: 2", "timeoutSeconds: 5"},
			path: "targetGroups[0].healthCheck.timeoutSeconds", msg: "timeout 5s is not less than the interval 5s"},
		{name: "healthy threshold", edits: []string{"healthyThreshold: 2", "healthyThreshold: 11"},
			path: "targetGroups[0].healthCheck.healthyThreshold", msg: "healthy threshold 11 is out of range"},
		{name: "unhealthy threshold", edits: []string{"unhealthyThreshold: 2", "unhealthyThreshold: 1"},
			path: "targetGroups[0].healthCheck.unhealthyThreshold", msg: "unhealthy threshold 1 is out of range"},
		{name: "health check path", edits: []string{"path: /health", "path: health"},
			path: "targetGroups[0].healthCheck.path", msg: "is not valid", hint: "start the path with /"},
		{name: "health check port", edits: []string{"path: /health", "path: /health\n      port: http"},
			path: "targetGroups[0].healthCheck.port", msg: `health check port "http" is not valid`},
		{name: "matcher syntax", edits: []string{"path: /health", "path: /health\n      matcher: ok"},
			path: "targetGroups[0].healthCheck.matcher", msg: "is not valid"},
		{name: "matcher range", edits: []string{"path: /health", "path: /health\n      matcher: \"200-599\""},
			path: "targetGroups[0].healthCheck.matcher", msg: "matcher code 599 is out of range"},
		{name: "deregistration delay", edits: []string{"deregistrationDelay: 10", "deregistrationDelay: 4000"},
			path: "targetGroups[0].deregistrationDelay", msg: "deregistration delay 4000 is out of range", hint: "0 to 3600"},
		{name: "slow start range", edits: []string{"deregistrationDelay: 10", "deregistrationDelay: 10\n    slowStart: 10"},
			path: "targetGroups[0].slowStart", msg: "slow start 10s is out of range", hint: "30-900"},
		{name: "slow start with least outstanding requests", edits: []string{"deregistrationDelay: 10", "deregistrationDelay: 10\n    slowStart: 60\n    algorithm: least_outstanding_requests"},
			path: "targetGroups[0].slowStart", msg: "does not support slow start with least_outstanding_requests"},
		{name: "algorithm", edits: []string{"deregistrationDelay: 10", "deregistrationDelay: 10\n    algorithm: round_robbin"},
			path: "targetGroups[0].algorithm", msg: "is not known", hint: `did you mean "round_robin"?`},
		{name: "stickiness type", edits: []string{"deregistrationDelay: 10", "deregistrationDelay: 10\n    stickiness: {enabled: true, type: cookie}"},
			path: "targetGroups[0].stickiness.type", msg: `stickiness type "cookie" is not known`},
		{name: "stickiness duration", edits: []string{"deregistrationDelay: 10", "deregistrationDelay: 10\n    stickiness: {enabled: true, durationSeconds: 700000}"},
			path: "targetGroups[0].stickiness.durationSeconds", msg: "stickiness duration 700000 is out of range", hint: "1 to 604800"},
		{name: "stickiness app cookie without name", edits: []string{"deregistrationDelay: 10", "deregistrationDelay: 10\n    stickiness: {enabled: true, type: app_cookie}"},
			path: "targetGroups[0].stickiness.cookieName", msg: "needs a cookie name"},
		{name: "stickiness reserved cookie", edits: []string{"deregistrationDelay: 10", "deregistrationDelay: 10\n    stickiness: {enabled: true, type: app_cookie, cookieName: AWSALBX}"},
			path: "targetGroups[0].stickiness.cookieName", msg: "reserved"},
		{name: "desired above max", edits: []string{"desiredCapacity: 2", "desiredCapacity: 7"},
			path: "autoScalingGroups[0].desiredCapacity", msg: "desiredCapacity 7 is outside minSize 2 .. maxSize 6", hint: "from 2 to 6"},
		{name: "desired below min", edits: []string{"desiredCapacity: 2", "desiredCapacity: 1"},
			path: "autoScalingGroups[0].desiredCapacity", msg: "desiredCapacity 1 is outside"},
		{name: "min above max", edits: []string{"minSize: 2", "minSize: 7"},
			path: "autoScalingGroups[0].minSize", msg: "minSize 7 is greater than maxSize 6"},
		{name: "max below one", edits: []string{"maxSize: 6", "maxSize: 0", "minSize: 2", "minSize: 0", "desiredCapacity: 2", "desiredCapacity: 0"},
			path: "autoScalingGroups[0].maxSize", msg: "maxSize 0 is less than 1"},
		{name: "negative min", edits: []string{"minSize: 2", "minSize: -1"},
			path: "autoScalingGroups[0].minSize", msg: "negative"},
		{name: "health check type", edits: []string{"healthCheckType: ELB", "healthCheckType: ALB"},
			path: "autoScalingGroups[0].healthCheckType", msg: "is not known"},
		{name: "grace period", edits: []string{"healthCheckGracePeriod: 30", "healthCheckGracePeriod: 9000"},
			path: "autoScalingGroups[0].healthCheckGracePeriod", msg: "out of range"},
		{name: "cpu target above 100", edits: []string{"metric: ALBRequestCountPerTarget\n        targetValue: 1000", "metric: ASGAverageCPUUtilization\n        targetValue: 150"},
			path: "autoScalingGroups[0].scalingPolicies[0].targetValue", msg: "above 100%"},
		{name: "metric name", edits: []string{"metric: ALBRequestCountPerTarget", "metric: ALBRequestCount"},
			path: "autoScalingGroups[0].scalingPolicies[0].metric", msg: "is not supported"},
		{name: "step scaling needs alarm and steps", edits: []string{"type: TargetTrackingScaling", "type: StepScaling"},
			path: "autoScalingGroups[0].scalingPolicies[0].alarm", msg: "step scaling needs an alarm"},
		{name: "asg in public subnet warns", edits: []string{"subnets: [private-a, private-b]", "subnets: [public-a, private-b]"},
			path: "autoScalingGroups[0].subnets[0]", msg: "subnet public-a is public", warning: true},
		{name: "lb in one zone", edits: []string{"subnets: [public-a, public-b]", "subnets: [public-a]"},
			path: "loadBalancers[0].subnets", msg: "needs subnets in at least two availability zones (AWS requires it); it has 1", hint: "public subnet in each of at least two zones"},
		{name: "lb twice in one zone", edits: []string{"  nat: single\n", explicitSubnets + "    - {name: public-a2, zone: a, type: public, cidr: 10.0.2.0/24}\n",
			"subnets: [public-a, public-b]", "subnets: [public-a, public-a2]"},
			path: "loadBalancers[0].subnets[1]", msg: "both in zone a"},
		{name: "lb in private subnet", edits: []string{"subnets: [public-a, public-b]", "subnets: [public-a, private-b]"},
			path: "loadBalancers[0].subnets[1]", msg: "subnet private-b is private: an internet-facing load balancer needs public subnets"},
		{name: "bastion in private subnet", edits: []string{"subnet: public-a", "subnet: private-a"},
			path: "bastion.subnet", msg: "is private"},
		{name: "listener port", edits: []string{"      - port: 80\n", "      - port: 0\n"},
			path: "loadBalancers[0].listeners[0].port", msg: "listener port 0 is out of range"},
		{name: "listener protocol", edits: []string{"protocol: HTTP\n        defaultAction", "protocol: TCP\n        defaultAction"},
			path: "loadBalancers[0].listeners[0].protocol", msg: "not supported"},
		{name: "action with two kinds", edits: []string{"forward: {targetGroup: web}", "forward: {targetGroup: web}\n          fixedResponse: {statusCode: 200}"},
			path: "loadBalancers[0].listeners[0].defaultAction", msg: "exactly one of forward, redirect or fixedResponse (it has 2)"},
		{name: "fixed response status", edits: []string{"forward: {targetGroup: web}", "fixedResponse: {statusCode: 302}"},
			path: "loadBalancers[0].listeners[0].defaultAction.fixedResponse.statusCode", msg: "not allowed"},
		{name: "duplicate security group", edits: []string{"  - name: bastion\n    description", "  - name: lb\n    description"},
			path: "securityGroups[1].name", msg: `security group "lb" is defined twice`},
		{name: "duplicate subnet", edits: []string{"  nat: single\n", explicitSubnets, "name: private-b", "name: private-a"},
			path: "vpc.subnets[3].name", msg: `subnet "private-a" is defined twice`},
		{name: "bad stack name", edits: []string{"name: realtime", "name: Real Time"},
			path: "name", msg: "is not valid"},
		{name: "publish not loopback", edits: []string{"address: 127.0.0.1:8080", "address: 10.0.0.1:8080"},
			path: "local.publish[0].address", msg: "10.0.0.1 is not a loopback address", hint: "127.0.0.0/8", at: "10.0.0.1:8080"},
		{name: "bastion publish not loopback", edits: []string{"bastion: 127.0.0.1:2222", "bastion: 0.0.0.0:2222"},
			path: "local.bastion", msg: "0.0.0.0 is not a loopback address"},
		{name: "console not loopback", edits: []string{"bastion: 127.0.0.1:2222", "bastion: 127.0.0.1:2222\n  console: 0.0.0.0:9465"},
			path: "local.console", msg: "0.0.0.0 is not a loopback address"},
		{name: "console address reused", edits: []string{"bastion: 127.0.0.1:2222", "bastion: 127.0.0.1:2222\n  console: 127.0.0.1:2222"},
			path: "local.console", msg: "127.0.0.1:2222 is also used by the bastion"},
		{name: "publish address syntax", edits: []string{"address: 127.0.0.1:8080", "address: localhost"},
			path: "local.publish[0].address", msg: "is not an address:port"},
		{name: "publish address reused", edits: []string{"bastion: 127.0.0.1:2222", "bastion: 127.0.0.1:8080"},
			path: "local.bastion", msg: "127.0.0.1:8080 is also used by listener web:80"},
		{name: "publish unknown listener", edits: []string{"listener: 80, address", "listener: 81, address"},
			path: "local.publish[0].listener", msg: "has no listener on port 81"},
		{name: "listener published twice", edits: []string{"    - {loadBalancer: web, listener: 80, address: 127.0.0.1:8080}", "    - {loadBalancer: web, listener: 80, address: 127.0.0.1:8080}\n    - {loadBalancer: web, listener: 80, address: 127.0.0.1:8081}"},
			path: "local.publish[1]", msg: "listener web:80 is published twice"},
		{name: "region", edits: []string{"region: us-east-1", "region: mars"},
			path: "aws.region", msg: "is not a region name"},
		{name: "app group does not admit lb", edits: []string{"port: 8000, group: lb}", "port: 8001, group: lb}"},
			path: "loadBalancers[0].listeners[0]", msg: "target group web is unreachable", hint: "{protocol: tcp, port: 8000, group: lb}", warning: true},
		{name: "app group admits the wrong group", edits: []string{"port: 8000, group: lb}", "port: 8000, group: bastion}"},
			path: "loadBalancers[0].listeners[0]", msg: "do not admit load balancer web on tcp/8000", warning: true},
		{name: "bastion allowed cidrs not admitted", edits: []string{"port: 22, cidr: 0.0.0.0/0}", "port: 22, cidr: 198.51.100.0/24}"},
			path: "bastion.allowedCidrs[0]", msg: "do not admit 0.0.0.0/0 on tcp/22", warning: true},
		{name: "bastion allowed cidrs narrower than rule", edits: []string{"securityGroups: [bastion]", "securityGroups: [bastion]\n  allowedCidrs: [10.9.0.0/16, 203.0.113.0/24]",
			"port: 22, cidr: 0.0.0.0/0}", "port: 22, cidr: 10.0.0.0/8}"},
			path: "bastion.allowedCidrs[1]", msg: "do not admit 203.0.113.0/24", warning: true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			src := edit(t, example(t), c.edits...)
			ps := check(t, src)
			var found *Problem
			for i, p := range ps {
				if p.Path == c.path && strings.Contains(p.Message, c.msg) {
					found = &ps[i]
					break
				}
			}
			if found == nil {
				t.Fatalf("no problem at %s with %q; got:\n%s", c.path, c.msg, dump(ps))
			}
			if want := map[bool]Severity{false: Error, true: Warning}[c.warning]; found.Severity != want {
				t.Errorf("severity %s, want %s", found.Severity, want)
			}
			if found.Hint == "" {
				t.Errorf("no fix hint: %s", found)
			}
			if c.hint != "" && !strings.Contains(found.Hint, c.hint) {
				t.Errorf("hint %q does not contain %q", found.Hint, c.hint)
			}
			if found.Pos.File != "moat.yaml" || found.Pos.Line == 0 || found.Pos.Column == 0 {
				t.Errorf("position %v is incomplete", found.Pos)
			}
			if c.at != "" {
				line, col := posOf(t, src, c.at)
				if found.Pos.Line != line || found.Pos.Column != col {
					t.Errorf("position %d:%d, want %d:%d (%q)", found.Pos.Line, found.Pos.Column, line, col, c.at)
				}
			}
			if !c.warning && len(ps.Errors()) == 0 {
				t.Error("Errors() is empty")
			}
		})
	}
}

func dump(ps Problems) string {
	var b strings.Builder
	for _, p := range ps {
		b.WriteString("  " + string(p.Severity) + " " + p.String() + "\n")
	}
	return b.String()
}

// TestValidateReportsEveryError checks that independent errors are all
// reported, sorted by position, each with file:line:column.
func TestValidateReportsEveryError(t *testing.T) {
	src := edit(t, example(t),
		"  nat: single\n", explicitSubnets,
		"cidr: 10.0.129.0/24", "cidr: 10.1.0.0/24",
		"port: 8000, group: lb}", "port: 8000, group: lbb}",
		"    minSize: 2", "    minSise: 2\n    minSize: 2",
		"deregistrationDelay: 10", "deregistrationDelay: 4000",
	)
	all := check(t, src)
	if w := all.Warnings(); len(w) != 0 {
		t.Errorf("unexpected warnings:\n%s", dump(w))
	}
	ps := all.Errors()
	want := []struct{ path, at string }{
		{"vpc.subnets[3].cidr", "10.1.0.0/24"},
		{"securityGroups[2].ingress[0].group", "lbb}"},
		{"targetGroups[0].deregistrationDelay", "4000"},
		{"autoScalingGroups[0].minSise", "minSise"},
	}
	if len(ps) != len(want) {
		t.Fatalf("got %d errors, want %d:\n%s", len(ps), len(want), dump(ps))
	}
	for i, w := range want {
		line, col := posOf(t, src, w.at)
		if ps[i].Path != w.path || ps[i].Pos.Line != line || ps[i].Pos.Column != col {
			t.Errorf("error %d: %s at %d:%d, want %s at %d:%d", i, ps[i].Path, ps[i].Pos.Line, ps[i].Pos.Column, w.path, line, col)
		}
	}
	msg := ps.Error()
	if !strings.HasPrefix(msg, "the stack file has 4 errors:") || strings.Count(msg, "moat.yaml:") != 4 {
		t.Errorf("Error() = %q", msg)
	}
}

func TestParseErrors(t *testing.T) {
	for _, c := range []struct{ name, src, msg string }{
		{"empty", "", "empty"},
		{"bad yaml", "name: [a\n", "invalid YAML"},
		{"two documents", "name: a\n---\nname: b\n", "more than one YAML document"},
		{"scalar root", "hello\n", "expected a mapping"},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := Parse("moat.yaml", []byte(c.src))
			var ps Problems
			if !errors.As(err, &ps) || len(ps) == 0 {
				t.Fatalf("Parse = %v, want Problems", err)
			}
			if !strings.Contains(ps[0].Message, c.msg) || ps[0].Pos.Line == 0 {
				t.Errorf("got %s, want %q with a line", ps[0], c.msg)
			}
		})
	}
}

func TestPos(t *testing.T) {
	src := example(t)
	f, err := Parse("moat.yaml", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	line, col := posOf(t, src, "minSize: 2")
	if p := f.Pos("autoScalingGroups[0].minSize"); p.Line != line || p.Column != col+len("minSize: ") {
		t.Errorf("minSize at %v, want %d:%d", p, line, col+len("minSize: "))
	}
	// An unwritten field falls back to its nearest written parent.
	if p, q := f.Pos("autoScalingGroups[0].instanceRefresh.instanceWarmup"), f.Pos("autoScalingGroups[0]"); p != q {
		t.Errorf("fallback %v, want %v", p, q)
	}
}

// TestParseAliasBomb: a small file whose aliases expand exponentially is
// refused quickly instead of walking every copy.
func TestParseAliasBomb(t *testing.T) {
	list := func(s string, n int) string { return "[" + strings.TrimSuffix(strings.Repeat(s+",", n), ",") + "]" }
	n := 60 // 60^4 ≈ 13 million values
	src := "p: &p " + list("/a", n) + "\n" +
		"r: &r {priority: 1, conditions: {pathPattern: *p}}\n" +
		"rs: &rs " + list("*r", n) + "\n" +
		"l: &l {port: 80, rules: *rs}\n" +
		"ls: &ls " + list("*l", n) + "\n" +
		"b: &b {name: x, listeners: *ls}\n" +
		"loadBalancers: " + list("*b", n) + "\n"
	_, err := Parse("moat.yaml", []byte(src))
	if err == nil || !strings.Contains(err.Error(), "expands to more than") {
		t.Errorf("Parse = %v", err)
	}
}

// A wrong VPC CIDR leaves no subnets to carve; its one error is reported,
// not one per reference to a subnet that would have been carved.
func TestBadVPCCIDRDoesNotCascade(t *testing.T) {
	for _, cidr := range []string{"10.0.0.0/33", "ten", "10.0.0.0/8"} {
		src := edit(t, example(t), "cidr: 10.0.0.0/16", "cidr: "+cidr)
		ps := check(t, src).Errors()
		if len(ps) != 1 || ps[0].Path != "vpc.cidr" {
			t.Errorf("cidr %s: want one vpc.cidr error, got:\n%s", cidr, dump(ps))
		}
	}
}

// A misspelt protocol is one error, not also a warning that the target
// group is unreachable (reachability is judged on error-free files only).
func TestErrorsDoNotCascadeIntoReachabilityWarnings(t *testing.T) {
	src := edit(t, example(t), "{protocol: tcp, port: 8000, group: lb}", "{protocol: tpc, port: 8000, group: lb}")
	all := check(t, src)
	if len(all) != 1 || all[0].Path != "securityGroups[2].ingress[0].protocol" {
		t.Errorf("want one error at securityGroups[2].ingress[0].protocol, got:\n%s", dump(all))
	}
	// Without errors the same unreachability is still a warning.
	src = edit(t, example(t), "{protocol: tcp, port: 8000, group: lb}", "{protocol: tcp, port: 8001, group: lb}")
	if w := check(t, src).Warnings(); len(w) != 1 || !strings.Contains(w[0].Message, "unreachable") {
		t.Errorf("want the unreachable warning, got:\n%s", dump(w))
	}
}

// bastion.allowedCidrs narrower than the bastion's group: a warning at the
// wide rule; narrowing the rule clears it; no allowedCidrs, no warning.
func TestBastionGroupWiderThanAllowedCIDRs(t *testing.T) {
	allowed := edit(t, example(t), "  securityGroups: [bastion]\n", "  securityGroups: [bastion]\n  allowedCidrs: [203.0.113.0/24]\n")
	w := check(t, allowed).Warnings()
	if len(w) != 1 || w[0].Path != "securityGroups[1].ingress[0]" || !strings.Contains(w[0].Message, "wider than bastion.allowedCidrs") {
		t.Errorf("want one warning at securityGroups[1].ingress[0], got:\n%s", dump(w))
	}
	narrowed := edit(t, allowed, "{protocol: tcp, port: 22, cidr: 0.0.0.0/0}", "{protocol: tcp, port: 22, cidr: 203.0.113.0/24}")
	if all := check(t, narrowed); len(all) != 0 {
		t.Errorf("narrowed rule: want no problems, got:\n%s", dump(all))
	}
	if all := check(t, example(t)); len(all) != 0 {
		t.Errorf("example: want no problems, got:\n%s", dump(all))
	}
}
