package awscfn

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// sshConfig runs the command line cmd (a shell command starting with ssh)
// as ssh -G through the shell, as a user would paste it, and returns
// OpenSSH's resolved configuration: the client's own parser.
func sshConfig(t *testing.T, cmd string) map[string][]string {
	t.Helper()
	if !strings.HasPrefix(cmd, "ssh ") {
		t.Fatalf("not an ssh command: %q", cmd)
	}
	out, err := exec.Command("sh", "-c", "ssh -G "+strings.TrimPrefix(cmd, "ssh ")).Output()
	if err != nil {
		t.Fatalf("ssh -G %s: %v", cmd, err)
	}
	cfg := map[string][]string{}
	for _, line := range strings.Split(string(out), "\n") {
		k, v, _ := strings.Cut(line, " ")
		cfg[k] = append(cfg[k], v)
	}
	return cfg
}

// TestSSHCommandWorksWithOpenSSH (issue 12, defect 7): the SSHCommand
// output must reach an instance with the key on both hops. OpenSSH's -J
// does not pass -i to the jump host, so the command uses a ProxyCommand
// that carries the key; ssh -G (the real client's parser) shows what each
// hop will use.
func TestSSHCommandWorksWithOpenSSH(t *testing.T) {
	if _, err := exec.LookPath("ssh"); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("ssh (OpenSSH client) is not installed; scripts/deps.sh installs it")
		}
		t.Skip("ssh (OpenSSH client) is not installed")
	}
	tpl := renderFile(t, stacks[0].file, Options{})
	var cmd string
	for _, o := range tpl.Outputs {
		if o.Name == OutputSSHCommand {
			cmd, _ = o.Value.(map[string]any)["Fn::Sub"].(string)
		}
	}
	if cmd == "" {
		t.Fatal("no SSHCommand output")
	}
	// The key file must exist for ssh -G to list it: stand in a temporary
	// home for ~.
	home := t.TempDir()
	key := filepath.Join(home, ".ssh", "ops")
	if err := os.MkdirAll(filepath.Dir(key), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(key, []byte("not a key\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(cmd, "~/.ssh/ops") {
		t.Fatalf("SSHCommand %q does not use the key pair's file ~/.ssh/ops", cmd)
	}
	cmd = strings.ReplaceAll(cmd, "~/.ssh/ops", key)
	cmd = strings.ReplaceAll(cmd, "${"+IDBastion+".PublicIp}", "192.0.2.10")
	cmd = strings.ReplaceAll(cmd, "PRIVATE_IP", "10.0.128.10")

	outer := sshConfig(t, cmd)
	if got := outer["hostname"]; len(got) != 1 || got[0] != "10.0.128.10" {
		t.Errorf("instance hop: hostname %v, want 10.0.128.10", got)
	}
	if got := outer["user"]; len(got) != 1 || got[0] != "ec2-user" {
		t.Errorf("instance hop: user %v, want ec2-user", got)
	}
	if got := outer["identityfile"]; len(got) != 1 || got[0] != key {
		t.Errorf("instance hop: identity files %v, want only %s", got, key)
	}
	if pj := outer["proxyjump"]; len(pj) > 0 {
		t.Errorf("instance hop uses ProxyJump %v: OpenSSH does not pass -i to the jump host", pj)
	}
	pc := outer["proxycommand"]
	if len(pc) != 1 {
		t.Fatalf("instance hop: proxycommand %v, want one through the bastion", pc)
	}
	// The jump: what ssh runs as the ProxyCommand, with %h:%p as ssh fills them.
	inner := sshConfig(t, strings.NewReplacer("%h", "10.0.128.10", "%p", "22").Replace(pc[0]))
	if got := inner["hostname"]; len(got) != 1 || got[0] != "192.0.2.10" {
		t.Errorf("bastion hop: hostname %v, want 192.0.2.10", got)
	}
	if got := inner["user"]; len(got) != 1 || got[0] != "ec2-user" {
		t.Errorf("bastion hop: user %v, want ec2-user (the bastion's user)", got)
	}
	if got := inner["identityfile"]; len(got) != 1 || got[0] != key {
		t.Errorf("bastion hop: identity files %v, want only %s (the key pair)", got, key)
	}
	// -W shows in ssh -G only through what it implies.
	if !strings.Contains(pc[0], " -W %h:%p ") || inner["clearallforwardings"][0] != "yes" || inner["exitonforwardfailure"][0] != "yes" {
		t.Errorf("bastion hop %q does not forward stdio to the instance (-W %%h:%%p)", pc[0])
	}
}
