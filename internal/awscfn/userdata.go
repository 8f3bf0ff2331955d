package awscfn

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/moat-dev/moat/internal/plan"
)

// MaxUserData is EC2's limit on user data, before base64 encoding.
const MaxUserData = 16 * 1024

// AppDir is where the app's files live on an instance.
const AppDir = "/opt/moat/app"

// userData builds a launch template's user data: a shell script that
// unpacks the app's files (inline, or fetched from S3), runs the file's
// user data once as root, and starts the command as a systemd service
// under the template's user with its environment. It returns the asset when
// the bundle ships through S3.
func (r *renderer) userData(lt *plan.LaunchTemplate) (any, *Asset, error) {
	var bundle []byte
	if lt.FilesDir != "" {
		b, err := Bundle(lt.FilesDir)
		if err != nil {
			return nil, nil, fmt.Errorf("render launch template %s: %w", lt.Name, err)
		}
		bundle = b
	}
	// The version the template shows is a hash of what the instances
	// get, so it changes exactly when the app does (the plan's version also
	// hashes local paths).
	lt.Version = contentVersion(*lt, bundle)
	ready := r.readiness(lt.Name)
	inline := script(*lt, ready, base64.StdEncoding.EncodeToString(bundle), "", "")
	bucket, key := r.opts.AssetBucket, r.opts.AssetKey
	useAsset := bundle != nil && bucket != ""
	if !useAsset && len(inline) > MaxUserData {
		if bundle == nil {
			return nil, nil, fmt.Errorf("render launch template %s: user data is %d bytes; EC2 takes at most %d", lt.Name, len(inline), MaxUserData)
		}
		// Too large to inline: ship it as an asset. The bucket parameter
		// defaults to aws.assetBucket; without one, moat deploy supplies
		// its own bucket.
		if bucket == "" {
			bucket = r.p.AWS.AssetBucket
		}
		useAsset = true
	}
	if !useAsset {
		return map[string]any{"Fn::Base64": subst(inline, nil)}, nil, nil
	}
	if key == "" || len(r.p.LaunchTemplates) > 1 {
		// One object per launch template: the key is a prefix when
		// several templates ship bundles.
		prefix := key
		if prefix == "" {
			prefix = "moat/" + r.p.Stack
		}
		key = strings.TrimSuffix(prefix, "/") + "/" + lt.Name + "-" + lt.Version + ".tar.gz"
	}
	a := Asset{Name: lt.Name, Dir: lt.FilesDir, ParamBucket: camel(lt.Name) + "AssetBucket", ParamKey: camel(lt.Name) + "AssetKey"}
	r.t.Parameters = append(r.t.Parameters,
		Parameter{Name: a.ParamBucket, Type: "String", Default: bucket, Description: fmt.Sprintf("S3 bucket holding the files of launch template %s", lt.Name)},
		Parameter{Name: a.ParamKey, Type: "String", Default: key, Description: fmt.Sprintf("S3 key of the files of launch template %s (a .tar.gz moat deploy uploads)", lt.Name)})
	r.t.Assets = append(r.t.Assets, a)
	s := script(*lt, ready, "", a.ParamBucket, a.ParamKey)
	return map[string]any{"Fn::Base64": subst(s, map[string]string{"@@BUCKET@@": a.ParamBucket, "@@KEY@@": a.ParamKey})}, &a, nil
}

// subst makes a boot script a Fn::Sub string when it has placeholders:
// the stack name, region and the given parameters. Every other ${ of the
// script is escaped, so the shell gets it as written.
func subst(s string, params map[string]string) any {
	vars := map[string]string{"@@STACK@@": "AWS::StackName", "@@REGION@@": "AWS::Region"}
	for k, v := range params {
		vars[k] = v
	}
	found := false
	for k := range vars {
		found = found || strings.Contains(s, k)
	}
	if !found {
		return s
	}
	s = strings.ReplaceAll(s, "${", "${!")
	for k, v := range vars {
		s = strings.ReplaceAll(s, k, "${"+v+"}")
	}
	return map[string]any{"Fn::Sub": s}
}

// Readiness: how long an instance waits for its app to pass the health
// check before it reports failure, and the margin for booting and
// installing the signal tool before that.
const (
	healthWait = 10 * time.Minute
	bootMargin = 5 * time.Minute
)

// readinessCheck is what an instance of a launch template reports to
// CloudFormation: the auto scaling group to signal, and the health check
// that must pass first (the group's first target group's, or a TCP
// connect to the app's port without one).
type readinessCheck struct {
	group   string // logical id
	url     string // "" for a TCP check of port
	port    int
	matcher string
	warmup  time.Duration
}

// signalTimeout is how long CloudFormation waits for an instance's signal.
func signalTimeout(g plan.AutoScalingGroup) time.Duration {
	return bootMargin + healthWait + g.RefreshWarmup
}

// signalledGroup is the group whose instances signal CloudFormation when
// they are ready: the one group launching from the template, in a VPC with
// NAT (without it an instance cannot reach CloudFormation to signal, and
// its group rolls on a timer). A template several groups launch from
// signals none (an instance cannot tell which group it is in).
func (r *renderer) signalledGroup(lt string) (plan.AutoScalingGroup, bool) {
	var found []plan.AutoScalingGroup
	for _, g := range r.p.AutoScalingGroups {
		if g.LaunchTemplate == lt {
			found = append(found, g)
		}
	}
	if len(found) != 1 || len(r.p.NATGateways) == 0 {
		return plan.AutoScalingGroup{}, false
	}
	return found[0], true
}

// readiness is the check of a launch template's instances, or nil.
func (r *renderer) readiness(lt string) *readinessCheck {
	g, ok := r.signalledGroup(lt)
	if !ok {
		return nil
	}
	rc := &readinessCheck{group: asgID(g.Name), warmup: g.RefreshWarmup}
	for _, l := range r.p.LaunchTemplates {
		if l.Name == lt {
			rc.port = l.Port
		}
	}
	for _, tgName := range g.TargetGroups {
		for _, tg := range r.p.TargetGroups {
			if tg.Name != tgName || rc.url != "" {
				continue
			}
			hc := tg.HealthCheck
			port := tg.Port
			if hc.Port != 0 {
				port = hc.Port
			}
			rc.url = fmt.Sprintf("%s://127.0.0.1:%d%s", strings.ToLower(hc.Protocol), port, hc.Path)
			rc.matcher = hc.Matcher
		}
	}
	return rc
}

// readyScript is the instance's readiness script: it signals the group
// success once the app passes its health check here, failure when it does
// not within its argument's seconds, or at once given "fail" (the boot
// script failed). cfn-signal needs no credentials; Amazon Linux 2023 may
// lack it, so it is installed when missing.
func readyScript(lt string, rc *readinessCheck) string {
	var b strings.Builder
	w := func(format string, a ...any) { fmt.Fprintf(&b, format, a...) }
	w("#!/bin/bash\n")
	if rc.url != "" {
		w("# moat: report an instance of launch template %s to CloudFormation: success once\n", lt)
		w("# the app answers %s with %s here, as its target group checks it;\n", rc.url, rc.matcher)
	} else {
		w("# moat: report an instance of launch template %s to CloudFormation: success once\n", lt)
		w("# the app accepts connections on port %d here;\n", rc.port)
	}
	w("# failure if not within $1 seconds, or at once given \"fail\".\n")
	w("set -uo pipefail\n")
	w("export PATH=\"$PATH:/opt/aws/bin\"\n")
	w("signal() {\n")
	w("  command -v cfn-signal >/dev/null || dnf install -y -q aws-cfn-bootstrap >&2 || true\n")
	w("  # Outside a create or rolling update (a scale-out) CloudFormation refuses the signal: harmless.\n")
	w("  cfn-signal -e \"$1\" --stack '@@STACK@@' --resource '%s' --region '@@REGION@@' ||\n", rc.group)
	w("    echo \"moat: CloudFormation did not take the signal (expected outside a deploy)\" >&2\n")
	w("}\n")
	w("healthy() {\n")
	if rc.url != "" {
		w("  local code r\n")
		w("  code=$(curl -sk -o /dev/null -m 2 -w '%%{http_code}' '%s') || return 1\n", rc.url)
		w("  for r in %s; do\n", strings.ReplaceAll(rc.matcher, ",", " "))
		w("    [ \"$code\" -ge \"${r%%-*}\" ] && [ \"$code\" -le \"${r#*-}\" ] && return 0\n")
		w("  done\n")
		w("  return 1\n")
	} else {
		w("  (exec 3<>/dev/tcp/127.0.0.1/%d) 2>/dev/null\n", rc.port)
	}
	w("}\n")
	w("if [ \"$1\" = fail ]; then signal 1; exit 1; fi\n")
	w("deadline=$((SECONDS + $1))\n")
	w("until healthy; do\n")
	w("  if [ \"$SECONDS\" -ge \"$deadline\" ]; then\n")
	w("    echo \"moat: the app did not pass its health check within $1 s\" >&2\n")
	w("    signal 1\n")
	w("    exit 1\n")
	w("  fi\n")
	w("  sleep 2\n")
	w("done\n")
	if rc.warmup > 0 {
		w("sleep %d # the instance refresh warm-up\n", secs(rc.warmup))
	}
	w("signal 0\n")
	return b.String()
}

// contentVersion hashes what an instance runs: the bundle, the command,
// user data, environment, port, user, type and groups.
func contentVersion(lt plan.LaunchTemplate, bundle []byte) string {
	h := sha256.New()
	h.Write(bundle)
	keys := sortedKeys(lt.Environment)
	fmt.Fprintf(h, "\x00%s\x00%s\x00%d\x00%s\x00%s\x00%v\x00%s", lt.Command, lt.UserData, lt.Port, lt.User, lt.AWSInstanceType, lt.SecurityGroups, lt.KeyPair)
	for _, k := range keys {
		fmt.Fprintf(h, "\x00%s=%s", k, lt.Environment[k])
	}
	return hex.EncodeToString(h.Sum(nil)[:6])
}

// script is the boot script. With inline non-empty the bundle is embedded;
// with bucket set, it is fetched with the AWS CLI (on Amazon Linux). With a
// readiness check it ends by waiting for the app's health and signalling
// the group, and a failure anywhere before signals failure.
func script(lt plan.LaunchTemplate, ready *readinessCheck, inline, bucketParam, keyParam string) string {
	var b strings.Builder
	user := lt.User
	if user == "" {
		user = "ec2-user"
	}
	w := func(format string, a ...any) { fmt.Fprintf(&b, format, a...) }
	w("#!/bin/bash\n")
	w("# moat launch template %s, version %s\n", lt.Name, lt.Version)
	w("set -euo pipefail\n")
	readyFile := "/etc/moat/" + lt.Name + "-ready.sh"
	if ready != nil {
		w("mkdir -p /etc/moat\n")
		w("cat > %s <<'MOAT_READY'\n%sMOAT_READY\n", readyFile, readyScript(lt.Name, ready))
		w("chmod 755 %s\n", readyFile)
		w("trap 'rc=$?; [ \"$rc\" -eq 0 ] || %s fail' EXIT\n", readyFile)
	}
	w("id -u %s >/dev/null 2>&1 || useradd --system --create-home %s\n", shq(user), shq(user))
	w("mkdir -p %s /etc/moat\n", AppDir)
	switch {
	case inline != "":
		w("base64 -d > /tmp/moat-app.tar.gz <<'MOAT_BUNDLE'\n")
		for i := 0; i < len(inline); i += 76 {
			w("%s\n", inline[i:min(i+76, len(inline))])
		}
		w("MOAT_BUNDLE\n")
		w("tar -xzf /tmp/moat-app.tar.gz -C %s && rm -f /tmp/moat-app.tar.gz\n", AppDir)
	case bucketParam != "":
		// The instance's AWS CLI has no region configured; without one it
		// would go through us-east-1, outside the VPC's S3 endpoint.
		w("aws s3 cp --region @@REGION@@ s3://@@BUCKET@@/@@KEY@@ /tmp/moat-app.tar.gz\n")
		w("tar -xzf /tmp/moat-app.tar.gz -C %s && rm -f /tmp/moat-app.tar.gz\n", AppDir)
	}
	if lt.UserData != "" {
		w("cat > /etc/moat/user-data <<'MOAT_USER_DATA'\n%s", lt.UserData)
		if !strings.HasSuffix(lt.UserData, "\n") {
			w("\n")
		}
		w("MOAT_USER_DATA\n")
		w("chmod 755 /etc/moat/user-data\n")
		w("(cd %s && /etc/moat/user-data)\n", AppDir)
	}
	w("chown -R %s: %s\n", shq(user), AppDir)
	keys := make([]string, 0, len(lt.Environment))
	for k := range lt.Environment {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	w("cat > /etc/moat/%s.env <<'MOAT_ENV'\n", lt.Name)
	for _, k := range keys {
		w("%s=%s\n", k, envq(lt.Environment[k]))
	}
	w("MOAT_ENV\n")
	w("cat > /etc/systemd/system/moat-%s.service <<'MOAT_UNIT'\n", lt.Name)
	w("[Unit]\nDescription=moat app %s\nAfter=network-online.target\nWants=network-online.target\n\n", lt.Name)
	w("[Service]\nUser=%s\nWorkingDirectory=%s\nEnvironmentFile=/etc/moat/%s.env\n", user, AppDir, lt.Name)
	w("ExecStart=/bin/sh -c %s\nRestart=always\nRestartSec=2\n\n", shq("exec "+lt.Command))
	w("[Install]\nWantedBy=multi-user.target\nMOAT_UNIT\n")
	w("systemctl daemon-reload\nsystemctl enable --now moat-%s.service\n", lt.Name)
	if ready != nil {
		w("%s %d\n", readyFile, secs(healthWait))
	}
	return b.String()
}

// shq quotes s for the shell (and for systemd's ExecStart, which takes the
// same single quotes).
func shq(s string) string {
	if s != "" && strings.Trim(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_./") == "" {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// envq quotes a value for a systemd EnvironmentFile.
func envq(s string) string {
	if strings.ContainsAny(s, " \t\"'\\$#") {
		return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(s) + `"`
	}
	return s
}

// Bundle packs a directory (or one file) as a deterministic .tar.gz:
// sorted entries, no timestamps or owners, modes normalised to 0644/0755.
// moat deploy uploads the same bytes in asset mode.
func Bundle(path string) ([]byte, error) {
	info, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("bundle app files: %w", err)
	}
	var buf bytes.Buffer
	gz, _ := gzip.NewWriterLevel(&buf, gzip.BestCompression)
	tw := tar.NewWriter(gz)
	type entry struct {
		rel  string
		full string
		dir  bool
		mode fs.FileMode
	}
	var entries []entry
	if !info.IsDir() {
		entries = append(entries, entry{rel: filepath.Base(path), full: path, mode: info.Mode()})
	} else {
		err = filepath.WalkDir(path, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if p == path {
				return nil
			}
			rel, _ := filepath.Rel(path, p)
			if d.Name() == "__pycache__" || d.Name() == ".git" {
				if d.IsDir() {
					return filepath.SkipDir
				}
			}
			fi, err := d.Info()
			if err != nil {
				return err
			}
			if !d.IsDir() && !fi.Mode().IsRegular() {
				return nil // sockets, symlinks, devices stay behind
			}
			entries = append(entries, entry{rel: filepath.ToSlash(rel), full: p, dir: d.IsDir(), mode: fi.Mode()})
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("bundle app files: %w", err)
		}
	}
	sort.Slice(entries, func(i, j int) bool { return entries[i].rel < entries[j].rel })
	for _, e := range entries {
		h := &tar.Header{Name: e.rel, Mode: 0o644, Format: tar.FormatPAX}
		switch {
		case e.dir:
			h.Typeflag, h.Name, h.Mode = tar.TypeDir, e.rel+"/", 0o755
		case e.mode&0o111 != 0:
			h.Mode = 0o755
		}
		var data []byte
		if !e.dir {
			if data, err = os.ReadFile(e.full); err != nil {
				return nil, fmt.Errorf("bundle app files: %w", err)
			}
			h.Typeflag, h.Size = tar.TypeReg, int64(len(data))
		}
		if err := tw.WriteHeader(h); err != nil {
			return nil, fmt.Errorf("bundle app files: %w", err)
		}
		if _, err := tw.Write(data); err != nil {
			return nil, fmt.Errorf("bundle app files: %w", err)
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	if err := gz.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// bastionEveryBoot is cloud-init's default list of final modules (Amazon
// Linux 2023) with the user scripts set to run on every boot, not only the
// first: AWS's documented way to run user data at each start. The other
// modules stay, so the host key fingerprints still reach the console.
const bastionEveryBoot = `#cloud-config
cloud_final_modules:
  - scripts-vendor
  - scripts-per-once
  - scripts-per-boot
  - scripts-per-instance
  - [scripts-user, always]
  - ssh-authkey-fingerprints
  - keys-to-console
  - final-message
  - power-state-change
`

// BastionAllowedCIDRsFile is where the bastion's user data writes the
// sshd configuration that admits logins only from bastion.allowedCidrs.
const BastionAllowedCIDRsFile = "/etc/ssh/sshd_config.d/10-moat-allowed-cidrs.conf"

// bastionUserData is the bastion's boot script, as MIME multi-part user
// data that cloud-init runs on every boot. CloudFormation applies a change
// of it by stopping and starting the instance, so a changed bastion.user or
// bastion.allowedCidrs takes effect on the running bastion. The script
// creates bastion.user when it is not ec2-user, with the key pair EC2
// installed for ec2-user, and limits sshd to bastion.allowedCidrs
// (AllowUsers USER@CIDR), or lifts the limit when every source is allowed.
// The security groups still decide who reaches port 22 at all.
func bastionUserData(b plan.Bastion) string {
	user := b.User
	if user == "" {
		user = "ec2-user"
	}
	var allow []string
	for _, c := range b.AllowedCIDRs {
		if c.Bits() == 0 {
			allow = nil
			break
		}
		allow = append(allow, user+"@"+c.String())
	}
	var sh strings.Builder
	w := func(format string, a ...any) { fmt.Fprintf(&sh, format, a...) }
	w("#!/bin/bash\n")
	w("# moat bastion: runs on every boot, so a changed bastion.user or bastion.allowedCidrs\n")
	w("# applies when CloudFormation restarts the bastion with new user data.\n")
	w("set -euo pipefail\n")
	if user != "ec2-user" {
		q := shq(user)
		w("# bastion.user logs in with the key pair EC2 installed for ec2-user.\n")
		w("id -u %s >/dev/null 2>&1 || useradd --create-home %s\n", q, q)
		w("home=$(getent passwd %s | cut -d: -f6)\n", q)
		w("install -d -m 700 -o %s -g %s \"$home/.ssh\"\n", q, q)
		w("install -m 600 -o %s -g %s /home/ec2-user/.ssh/authorized_keys \"$home/.ssh/authorized_keys\"\n", q, q)
	}
	if len(allow) > 0 {
		w("# bastion.allowedCidrs: sshd admits logins only from these networks.\n")
		w("echo 'AllowUsers %s' > %s\n", strings.Join(allow, " "), BastionAllowedCIDRsFile)
	} else {
		w("# bastion.allowedCidrs admits every source.\n")
		w("rm -f %s\n", BastionAllowedCIDRsFile)
	}
	w("systemctl restart sshd\n")
	const boundary = "MOAT-BASTION-BOUNDARY"
	part := func(ctype, file, body string) string {
		return "--" + boundary + "\n" +
			"Content-Type: " + ctype + "; charset=\"us-ascii\"\n" +
			"MIME-Version: 1.0\nContent-Transfer-Encoding: 7bit\n" +
			"Content-Disposition: attachment; filename=\"" + file + "\"\n\n" + body + "\n"
	}
	return "Content-Type: multipart/mixed; boundary=\"" + boundary + "\"\nMIME-Version: 1.0\n\n" +
		part("text/cloud-config", "cloud-config.txt", bastionEveryBoot) +
		part("text/x-shellscript", "bastion.sh", sh.String()) +
		"--" + boundary + "--\n"
}
