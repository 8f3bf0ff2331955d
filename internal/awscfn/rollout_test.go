package awscfn

import (
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/moat-dev/moat/internal/plan"
)

// TestRolloutWaitsForHealth (issue 12, defect 8): like moat refresh
// locally, a first create waits until the desired instances are healthy,
// and a launch template change rolls through the group keeping the file's
// minimum healthy percentage in service and waiting for each new
// instance's signal; a broken app fails the deploy and rolls back.
func TestRolloutWaitsForHealth(t *testing.T) {
	tpl := renderFile(t, stacks[0].file, Options{})
	g := find(t, tpl, "AutoScalingGroupWeb")
	rs, _ := g.CreationPolicy["ResourceSignal"].(map[string]any)
	if fmt.Sprint(rs["Count"]) != "2" || rs["Timeout"] == nil {
		t.Errorf("CreationPolicy %v: want a ResourceSignal for the 2 desired instances", g.CreationPolicy)
	}
	ru, _ := g.UpdatePolicy["AutoScalingRollingUpdate"].(map[string]any)
	if ru["WaitOnResourceSignals"] != true {
		t.Errorf("rolling update does not wait for signals: %v", ru)
	}
	// minHealthyPercentage 90 of 2 desired: keep 2 in service.
	if ru["MinInstancesInService"] != "2" || ru["MaxBatchSize"] != "1" {
		t.Errorf("rolling update keeps %v in service in batches of %v, want 2 and 1", ru["MinInstancesInService"], ru["MaxBatchSize"])
	}
	if pause, err := time.ParseDuration(strings.ToLower(strings.TrimPrefix(str(ru["PauseTime"]), "PT"))); err != nil || pause < 10*time.Minute {
		t.Errorf("PauseTime %v: the time to wait for a signal must cover a boot and the health wait", ru["PauseTime"])
	}
	if ud := userDataScript(t, tpl, "LaunchTemplateApp"); !strings.Contains(ud, "--resource 'AutoScalingGroupWeb'") ||
		!strings.Contains(ud, "http://127.0.0.1:8000/health") {
		t.Errorf("user data does not signal AutoScalingGroupWeb after checking http://127.0.0.1:8000/health:\n%s", ud)
	}
}

// TestRolloutWithoutNAT: without NAT an instance cannot reach
// CloudFormation to signal, so the group rolls on its warm-up (and
// validation warns); nothing waits for a signal that cannot come.
func TestRolloutWithoutNAT(t *testing.T) {
	p := loadPlan(t, stacks[0].file)
	p.NATGateways = nil
	for i := range p.RouteTables {
		p.RouteTables[i].Routes = slices.DeleteFunc(p.RouteTables[i].Routes, func(r plan.Route) bool { return r.Target == plan.TargetNAT })
	}
	tpl, err := Render(p, Options{})
	if err != nil {
		t.Fatal(err)
	}
	g := find(t, tpl, "AutoScalingGroupWeb")
	ru := g.UpdatePolicy["AutoScalingRollingUpdate"].(map[string]any)
	if g.CreationPolicy != nil || ru["WaitOnResourceSignals"] != false || ru["PauseTime"] != "PT10S" {
		t.Errorf("no-NAT group: CreationPolicy %v, rolling update %v", g.CreationPolicy, ru)
	}
	if ud := userDataScript(t, tpl, "LaunchTemplateApp"); strings.Contains(ud, "cfn-signal") {
		t.Error("no-NAT instances try to signal")
	}
}

// userDataScript returns a launch template's user data as the instance
// gets it: Fn::Sub applied (stack realtime, region us-east-1).
func userDataScript(t *testing.T, tpl *Template, id string) string {
	t.Helper()
	data := props(t, tpl, id)["LaunchTemplateData"].(map[string]any)
	b64 := data["UserData"].(map[string]any)["Fn::Base64"]
	switch x := b64.(type) {
	case string:
		return x
	case map[string]any:
		s := x["Fn::Sub"].(string)
		s = strings.NewReplacer("${AWS::StackName}", "realtime", "${AWS::Region}", "us-east-1").Replace(s)
		return strings.ReplaceAll(s, "${!", "${")
	}
	t.Fatalf("user data %v", b64)
	return ""
}

// TestReadyScriptSignals runs the instance's readiness script for real
// against an app on loopback, with cfn-signal stood in by a script that
// records its arguments: success once the app answers its health check
// with a code the matcher accepts, failure when it does not within the
// budget, and failure at once when the boot script failed.
func TestReadyScriptSignals(t *testing.T) {
	for _, bin := range []string{"bash", "curl"} {
		if _, err := exec.LookPath(bin); err != nil {
			if os.Getenv("CI") == "true" {
				t.Fatalf("%s is not installed; scripts/deps.sh installs it", bin)
			}
			t.Skipf("%s is not installed", bin)
		}
	}
	for _, c := range []struct {
		name    string
		status  int
		matcher string
		arg     string
		want    string // cfn-signal's exit code argument
		refused bool   // CloudFormation refuses the signal (a scale-out)
	}{
		{"healthy", 200, "200", "20", "-e 0", false},
		{"healthy in a range", 302, "200-299,302", "20", "-e 0", false},
		{"unhealthy code", 503, "200", "3", "-e 1", false},
		{"boot failed", 200, "200", "fail", "-e 1", false},
		{"scale-out: signal refused", 200, "200", "20", "-e 0", true},
	} {
		t.Run(c.name, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if r.URL.Path != "/health" {
					http.NotFound(w, r)
					return
				}
				w.WriteHeader(c.status)
			}))
			defer srv.Close()
			_, portS, _ := net.SplitHostPort(srv.Listener.Addr().String())
			port, _ := strconv.Atoi(portS)
			p := loadPlan(t, stacks[0].file)
			p.LaunchTemplates[0].Port, p.TargetGroups[0].Port = port, port
			p.TargetGroups[0].HealthCheck.Matcher = c.matcher
			p.AutoScalingGroups[0].RefreshWarmup = time.Second
			tpl, err := Render(p, Options{})
			if err != nil {
				t.Fatal(err)
			}
			ud := userDataScript(t, tpl, "LaunchTemplateApp")
			_, rest, ok := strings.Cut(ud, "<<'MOAT_READY'\n")
			ready, _, ok2 := strings.Cut(rest, "\nMOAT_READY\n")
			if !ok || !ok2 {
				t.Fatalf("no readiness script in the user data:\n%s", ud)
			}
			dir := t.TempDir()
			script := filepath.Join(dir, "ready.sh")
			os.WriteFile(script, []byte(ready+"\n"), 0o755)
			log := filepath.Join(dir, "signals")
			stub := "#!/bin/sh\necho \"$@\" >> " + log + "\n"
			if c.refused {
				stub += "echo 'ValidationError: Signal was not accepted' >&2\nexit 1\n"
			}
			os.WriteFile(filepath.Join(dir, "cfn-signal"), []byte(stub), 0o755)
			cmd := exec.Command("bash", script, c.arg)
			cmd.Env = append(os.Environ(), "PATH="+dir+":"+os.Getenv("PATH"))
			out, err := cmd.CombinedOutput()
			got, _ := os.ReadFile(log)
			want := c.want + " --stack realtime --resource AutoScalingGroupWeb --region us-east-1\n"
			if string(got) != want {
				t.Errorf("cfn-signal called with %q, want %q; script output:\n%s", got, want, out)
			}
			// The boot script fails exactly when the app is not ready.
			if failed := err != nil; failed != (c.want == "-e 1") {
				t.Errorf("script exit %v, want failure %v:\n%s", err, c.want == "-e 1", out)
			}
		})
	}
}

// TestBootFailureSignals: when any step of the boot script fails before
// the app is up (a failed download, a broken user data), its EXIT trap
// reports failure at once instead of letting CloudFormation wait out the
// timeout. The test runs the script's own head (through the trap) and
// then a failing step, with the readiness script stood in.
func TestBootFailureSignals(t *testing.T) {
	ud := userDataScript(t, renderFile(t, stacks[0].file, Options{}), "LaunchTemplateApp")
	i := strings.Index(ud, "\ntrap '")
	if i < 0 {
		t.Fatalf("no EXIT trap in the user data:\n%s", ud[:min(len(ud), 2000)])
	}
	head := ud[:i+1+strings.Index(ud[i+1:], "\n")+1]
	_, head, _ = strings.Cut(head, "\nMOAT_READY\n") // skip writing the readiness script
	dir := t.TempDir()
	log := filepath.Join(dir, "ready.log")
	stub := filepath.Join(dir, "ready.sh")
	os.WriteFile(stub, []byte("#!/bin/sh\necho \"$@\" >> "+log+"\n"), 0o755)
	head = strings.ReplaceAll(head, "/etc/moat/app-ready.sh", stub)
	for _, c := range []struct {
		step string
		want string
	}{
		{"false # a failing step\n", "fail\n"},
		{"true\n", ""},
	} {
		os.Remove(log)
		script := "#!/bin/bash\nset -euo pipefail\n" + strings.TrimPrefix(head, "chmod 755 "+stub+"\n") + c.step
		out, _ := exec.Command("bash", "-c", script).CombinedOutput()
		got, _ := os.ReadFile(log)
		if string(got) != c.want {
			t.Errorf("after %q the readiness script got %q, want %q:\n%s\n%s", c.step, got, c.want, script, out)
		}
	}
}
