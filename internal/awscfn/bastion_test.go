package awscfn

import (
	"io"
	"mime"
	"mime/multipart"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/moat-dev/moat/internal/plan"
	"github.com/moat-dev/moat/internal/testutil"
)

func cidrs(s ...string) []netip.Prefix {
	var out []netip.Prefix
	for _, c := range s {
		out = append(out, netip.MustParsePrefix(c))
	}
	return out
}

// bastionParts splits the bastion's user data into its cloud-config and
// its shell script.
func bastionParts(t *testing.T, ud string) (cloudConfig map[string]any, script string) {
	t.Helper()
	head, body, ok := strings.Cut(ud, "\n\n")
	if !ok {
		t.Fatalf("user data has no MIME header: %q", ud[:min(len(ud), 80)])
	}
	var ctype string
	for _, line := range strings.Split(head, "\n") {
		if k, v, _ := strings.Cut(line, ":"); strings.EqualFold(k, "Content-Type") {
			ctype = strings.TrimSpace(v)
		}
	}
	mt, params, err := mime.ParseMediaType(ctype)
	if err != nil || mt != "multipart/mixed" {
		t.Fatalf("user data is %q (%v), want multipart/mixed", ctype, err)
	}
	mr := multipart.NewReader(strings.NewReader(body), params["boundary"])
	for {
		part, err := mr.NextPart()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(part)
		switch part.Header.Get("Content-Type") {
		case `text/cloud-config; charset="us-ascii"`:
			if err := yaml.Unmarshal(b, &cloudConfig); err != nil {
				t.Fatalf("cloud-config: %v", err)
			}
		case `text/x-shellscript; charset="us-ascii"`:
			script = string(b)
		default:
			t.Fatalf("unexpected part %q", part.Header.Get("Content-Type"))
		}
	}
	return cloudConfig, script
}

// TestBastionUserDataRunsEveryBoot (issue 12, defect 9): CloudFormation
// applies a change of the bastion's user data by stopping and starting it,
// and cloud-init runs user scripts only on an instance's first boot, so a
// changed bastion.allowedCidrs never took effect. The user data now tells
// cloud-init to run the script on every boot (AWS's documented
// multi-part form), keeps cloud-init's other final modules, and is
// present even when every source is allowed, so lifting a limit applies
// too.
func TestBastionUserDataRunsEveryBoot(t *testing.T) {
	for _, allowed := range [][]netip.Prefix{nil, cidrs("0.0.0.0/0"), cidrs("203.0.113.0/24")} {
		cc, script := bastionParts(t, bastionUserData(plan.Bastion{User: "ec2-user", AllowedCIDRs: allowed}))
		var final []string
		for _, m := range cc["cloud_final_modules"].([]any) {
			switch x := m.(type) {
			case string:
				final = append(final, x)
			case []any:
				final = append(final, x[0].(string)+" "+x[1].(string))
			}
		}
		if !slices.Contains(final, "scripts-user always") {
			t.Errorf("allowed %v: cloud_final_modules %v do not run the user script always", allowed, final)
		}
		for _, keep := range []string{"scripts-per-boot", "ssh-authkey-fingerprints", "keys-to-console", "final-message"} {
			if !slices.Contains(final, keep) {
				t.Errorf("allowed %v: cloud_final_modules drop %s", allowed, keep)
			}
		}
		if !strings.HasPrefix(script, "#!/bin/bash\n") {
			t.Errorf("allowed %v: no shell script part", allowed)
		}
	}
	// A change of allowedCidrs changes the bastion's user data and nothing
	// else of it (an update with a restart, not a replacement).
	a := loadPlan(t, stacks[0].file)
	b := loadPlan(t, stacks[0].file)
	b.Bastion.AllowedCIDRs = cidrs("198.51.100.0/24")
	if got := changedResources(t, a, b); !slices.Equal(got, []string{IDBastion}) {
		t.Fatalf("changed %v, want only the bastion", got)
	}
	ra, _ := Render(a, Options{})
	rb, _ := Render(b, Options{})
	pa, pb := props(t, ra, IDBastion), props(t, rb, IDBastion)
	for k := range pa {
		if k != "UserData" && !slices.Equal([]string{mustString(t, pa[k])}, []string{mustString(t, pb[k])}) {
			t.Errorf("property %s changed too", k)
		}
	}
}

func mustString(t *testing.T, v any) string {
	b, err := marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestBastionUserDataInSandbox (issue 12, defects 6 and 9) runs the
// bastion's boot script for real, as root, in a mount namespace over a copy
// of /etc and empty /home and /var/log, with systemctl stubbed: a
// bastion.user other than ec2-user exists and logs in with the key pair
// EC2 installed for ec2-user (before, AllowUsers named a user that did not
// exist); AllowUsers admits only the allowed networks; a second boot with
// other networks, and a third with none, apply them; and OpenSSH's sshd
// accepts each configuration.
func TestBastionUserDataInSandbox(t *testing.T) {
	testutil.RequireRoot(t, "a mount namespace")
	for _, bin := range []string{"unshare", "useradd", "sshd", "ssh-keygen"} {
		if _, err := exec.LookPath(bin); err != nil {
			t.Fatalf("%s is not installed (scripts/deps.sh installs it): %v", bin, err)
		}
	}
	dir := t.TempDir()
	stubs := filepath.Join(dir, "bin")
	os.MkdirAll(stubs, 0o755)
	// systemctl stands in for the real one: it records the call.
	os.WriteFile(filepath.Join(stubs, "systemctl"), []byte("#!/bin/sh\necho \"$@\" >> "+filepath.Join(dir, "systemctl.log")+"\n"), 0o755)
	hostKey := filepath.Join(dir, "host_key")
	if out, err := exec.Command("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", hostKey).CombinedOutput(); err != nil {
		t.Fatalf("ssh-keygen: %v: %s", err, out)
	}
	var boots []string
	for i, allowed := range [][]netip.Prefix{cidrs("203.0.113.0/24", "198.51.100.7/32"), cidrs("192.0.2.0/24"), nil} {
		_, script := bastionParts(t, bastionUserData(plan.Bastion{User: "ops", AllowedCIDRs: allowed}))
		p := filepath.Join(dir, "boot"+string(rune('0'+i))+".sh")
		os.WriteFile(p, []byte(script), 0o755)
		boots = append(boots, p)
	}
	// One sandbox, three boots; what each leaves behind is printed
	// between markers.
	sandbox := `set -eu
T=` + dir + `
# Files other processes add or remove meanwhile (lock files) may vanish.
cp -a /etc "$T/etc" 2>/dev/null || test -s "$T/etc/passwd"
rm -f "$T"/etc/*.lock
mount --bind "$T/etc" /etc
mount -t tmpfs tmpfs /home && mount -t tmpfs tmpfs /var/log
mount -t tmpfs tmpfs /run && mkdir -m 755 /run/sshd # sshd -t wants its privilege separation directory
mkdir -p /etc/ssh/sshd_config.d
# What EC2 and cloud-init set up before user scripts: ec2-user with the key pair.
id -u ec2-user >/dev/null 2>&1 || useradd ec2-user
install -d -m 755 -o ec2-user -g ec2-user /home/ec2-user
install -d -m 700 -o ec2-user -g ec2-user /home/ec2-user/.ssh
echo 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIA0000000000000000000000000000000000000000000 ops' > /home/ec2-user/.ssh/authorized_keys
chown ec2-user: /home/ec2-user/.ssh/authorized_keys && chmod 600 /home/ec2-user/.ssh/authorized_keys
printf 'HostKey %s\nInclude /etc/ssh/sshd_config.d/*.conf\n' "$T/host_key" > "$T/sshd_config"
for boot in ` + strings.Join(boots, " ") + `; do
  PATH="$T/bin:$PATH" bash "$boot"
  echo "=== boot"
  getent passwd ops | cut -d: -f1,6
  stat -c '%U %a %n' /home/ops/.ssh /home/ops/.ssh/authorized_keys
  cat /home/ops/.ssh/authorized_keys
  cat /etc/ssh/sshd_config.d/*.conf 2>/dev/null || echo "(no sshd_config.d files)"
  /usr/sbin/sshd -t -f "$T/sshd_config" && echo "sshd: config ok"
  /usr/sbin/sshd -T -f "$T/sshd_config" -C user=ops,host=x,addr=203.0.113.5 | grep -i '^allowusers' || echo "allowusers (none)"
  cat "$T/systemctl.log" && rm "$T/systemctl.log"
done
`
	out, err := exec.Command("unshare", "--mount", "--propagation", "private", "bash", "-c", sandbox).CombinedOutput()
	if err != nil {
		t.Fatalf("sandbox: %v\n%s", err, out)
	}
	got := strings.Split(string(out), "=== boot\n")[1:]
	if len(got) != 3 {
		t.Fatalf("want 3 boots:\n%s", out)
	}
	key := "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIA0000000000000000000000000000000000000000000 ops"
	for i, want := range [][]string{
		{"ops:/home/ops", "ops 700 /home/ops/.ssh", "ops 600 /home/ops/.ssh/authorized_keys", key,
			"AllowUsers ops@203.0.113.0/24 ops@198.51.100.7/32", "sshd: config ok", "allowusers ops@203.0.113.0/24", "allowusers ops@198.51.100.7/32", "restart sshd"},
		{"ops:/home/ops", key, "AllowUsers ops@192.0.2.0/24", "sshd: config ok", "allowusers ops@192.0.2.0/24", "restart sshd"},
		{"ops:/home/ops", key, "(no sshd_config.d files)", "sshd: config ok", "allowusers (none)", "restart sshd"},
	} {
		for _, w := range want {
			if !strings.Contains(got[i], w+"\n") {
				t.Errorf("boot %d lacks %q:\n%s", i+1, w, got[i])
			}
		}
	}
	if strings.Contains(got[1], "203.0.113.0/24") {
		t.Errorf("boot 2 kept the first boot's networks:\n%s", got[1])
	}
}
