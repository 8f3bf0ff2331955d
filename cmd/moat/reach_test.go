package main

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/moat-dev/moat/internal/secgroup"
)

// naclsOnTheExample are network ACLs for the example on its public and
// private subnets: the public subnets admit HTTP and SSH from anywhere
// and replies from the private half only; the private subnets deny SSH
// from public-b (rule 90), admit the app's port and SSH from the VPC, and
// let replies out to the VPC only (nothing to the internet).
const naclsOnTheExample = `
networkAcls:
  - name: public
    subnets: [public-a, public-b]
    inbound:
      - {ruleNumber: 100, protocol: tcp, portRange: 80, cidr: 0.0.0.0/0, ruleAction: allow}
      - {ruleNumber: 110, protocol: tcp, portRange: 22, cidr: 0.0.0.0/0, ruleAction: allow}
      - {ruleNumber: 120, protocol: tcp, portRange: "1024-65535", cidr: 10.0.128.0/17, ruleAction: allow}
    outbound:
      - {ruleNumber: 100, protocol: all, cidr: 0.0.0.0/0, ruleAction: allow}
  - name: private
    subnets: [private-a, private-b]
    inbound:
      - {ruleNumber: 90, protocol: tcp, portRange: 22, cidr: 10.0.1.0/24, ruleAction: deny}
      - {ruleNumber: 100, protocol: tcp, portRange: 8000, cidr: 10.0.0.0/16, ruleAction: allow}
      - {ruleNumber: 110, protocol: tcp, portRange: 22, cidr: 10.0.0.0/16, ruleAction: allow}
    outbound:
      - {ruleNumber: 100, protocol: tcp, portRange: "1024-65535", cidr: 10.0.0.0/16, ruleAction: allow}
`

// forgetEphemeral turns naclsOnTheExample's private outbound into one
// that forgets the replies: HTTPS out, everything else denied (rule 200).
func forgetEphemeral(s string) string {
	return strings.Replace(s, `      - {ruleNumber: 100, protocol: tcp, portRange: "1024-65535", cidr: 10.0.0.0/16, ruleAction: allow}`,
		"      - {ruleNumber: 100, protocol: tcp, portRange: 443, cidr: 0.0.0.0/0, ruleAction: allow}\n      - {ruleNumber: 200, protocol: all, cidr: 0.0.0.0/0, ruleAction: deny}", 1)
}

// TestReachExposedExample: on the bundled example, moat reach --exposed
// lists exactly the load balancer's listener port and the bastion's SSH
// port, in text and JSON; with the network ACLs too.
func TestReachExposedExample(t *testing.T) {
	for _, file := range []string{exampleFile, copyExample(t, "\nbastion:\n", naclsOnTheExample+"\nbastion:\n")} {
		stdout, stderr, code := run(t, "reach", "-f", file, "--offline", "--exposed", "-o", "json")
		if code != exitOK {
			t.Fatalf("exit %d: %s", code, stderr)
		}
		var es []secgroup.Exposure
		if err := json.Unmarshal([]byte(stdout), &es); err != nil {
			t.Fatalf("%v\n%s", err, stdout)
		}
		var got []string
		for _, e := range es {
			got = append(got, e.Target+" "+e.Ports()+" "+e.Listener)
		}
		if want := []string{"bastion tcp 22 ", "lb:web tcp 80 HTTP:80"}; strings.Join(got, "|") != strings.Join(want, "|") {
			t.Errorf("%s: --exposed lists %q, want exactly %q", file, got, want)
		}
		text, _, _ := run(t, "reach", "-f", file, "--offline", "--exposed")
		if lines := strings.Split(strings.TrimSpace(text), "\n"); len(lines) != 4 || !strings.HasPrefix(lines[1], "bastion ") || !strings.HasPrefix(lines[2], "lb:web ") ||
			!strings.Contains(lines[2], "sg lb ingress #1: tcp 80 0.0.0.0/0") {
			t.Errorf("--exposed text:\n%s", text)
		}
	}
}

// TestReachThroughTheLoadBalancer: FROM lb:NAME:PORT follows the listener
// to each target, offline with health unknown; a NACL that forgets the
// ephemeral range is named on the return path (and moat validate warned);
// misuse is a usage error.
func TestReachThroughTheLoadBalancer(t *testing.T) {
	stdout, stderr, code := run(t, "reach", "-f", exampleFile, "--offline", "internet", "lb:web:80")
	if code != exitOK {
		t.Fatalf("exit %d\n%s%s", code, stdout, stderr)
	}
	for _, want := range []string{"ALLOWED  internet -> lb:web:80 (listener HTTP:80)", "internet -> lb-web-1 (10.0.1.6) tcp/80: allowed",
		"rule:    default: forward to target group web", "target:  web-hypothetical (10.0.128.4:8000) in target group web, health: unknown (stack not running)",
		"lb-web-1 (10.0.1.6) -> web-hypothetical (10.0.128.4) tcp/8000: allowed"} {
		if !strings.Contains(stdout, want) {
			t.Errorf("output lacks %q:\n%s", want, stdout)
		}
	}

	// The load balancer as a plain destination is one node; the answer
	// says how to follow the listener.
	if stdout, _, _ := run(t, "reach", "-f", exampleFile, "--offline", "internet", "lb:web", "80"); !strings.Contains(stdout, "lb:web:80 follows its listener to the targets") {
		t.Errorf("internet lb:web 80 gives no hint at lb:web:80:\n%s", stdout)
	}

	forgot := copyExample(t, "\nbastion:\n", forgetEphemeral(naclsOnTheExample)+"\nbastion:\n")
	_, stderr, code = runBin(t, "validate", forgot)
	if code != exitOK || !strings.Contains(stderr, "network ACL private blocks") || !strings.Contains(stderr, "rule 200 denies them") {
		t.Errorf("moat validate: exit %d, want 0 with a warning naming rule 200:\n%s", code, stderr)
	}
	stdout, _, code = run(t, "reach", "-f", forgot, "--offline", "internet", "lb:web:80", "-o", "json")
	var v secgroup.LBVerdict
	if err := json.Unmarshal([]byte(stdout), &v); err != nil {
		t.Fatalf("%v\n%s", err, stdout)
	}
	const reply = "reply (tcp 32768-60999 to 10.0.0.6) leaving subnet private-a: denied by nacl private out 200 deny all all 0.0.0.0/0"
	if code != exitFailure || v.Allowed || len(v.Blockers) != 2 || !strings.Contains(v.Blockers[0].Message, reply) || v.Blockers[0].Code != secgroup.CodeSubnetACL {
		t.Errorf("exit %d, verdict %+v; want denied, one return-path blocker per load balancer node, the first naming %q", code, v.Blockers, reply)
	}

	for _, args := range [][]string{
		{"lb:web:80", "bastion", "22"},  // a listener is no source
		{"internet", "lb:web:80", "81"}, // two ports
		{"--exposed", "internet"},       // --exposed takes nothing
		{"internet", "lb:web:80", "--proto", "udp"},
		{"internet", "bastion", "22", "--probe", "--offline"},
	} {
		if _, stderr, code := run(t, append([]string{"reach", "-f", exampleFile}, args...)...); code != exitUsage {
			t.Errorf("moat reach %q: exit %d, want %d\n%s", args, code, exitUsage, stderr)
		}
	}
	if _, stderr, code := run(t, "reach", "-f", exampleFile, "--offline", "internet", "lb:nope:80"); code != exitNotFound || !strings.Contains(stderr, "no load balancer named nope") {
		t.Errorf("lb:nope:80: exit %d %s", code, stderr)
	}
}
