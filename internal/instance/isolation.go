package instance

import (
	"fmt"
	"path"
	"slices"
	"strconv"
	"strings"
)

// Isolation is how far an instance is kept from the host and from other
// instances.
type Isolation string

const (
	// IsolationMachine (the default) runs the instance like a separate
	// machine: its own PID, mount, UTS and IPC namespaces besides its
	// network namespace; its own hostname; a private /tmp, /run, /root
	// and /home holding only its own home; the rest of the host's
	// filesystem read-only; and its processes in a user namespace where
	// user data runs as root (uid 0 inside) and the command as the launch
	// template's user, mapped on the host to a uid range of its own.
	IsolationMachine Isolation = "machine"
	// IsolationProcess runs the instance as an unprivileged process of
	// the host in its network namespace only (the stack file's
	// local.isolation: process): it sees the host's processes and files
	// as any local account does.
	IsolationProcess Isolation = "process"
)

// UID ranges: every isolated instance maps uids 0-65535 inside its user
// namespace to a range of its own on the host, one slot of UIDRangeSize
// uids from UIDRangeBase on. The base is far above the ranges that
// distributions hand out in /etc/subuid (from 100000) and below 2^31,
// which some tools read as negative.
const (
	UIDRangeBase  = 1 << 30
	UIDRangeSize  = 1 << 16
	UIDRangeSlots = (1<<31 - UIDRangeBase) / UIDRangeSize
)

// slotBase is the first host uid of slot.
func slotBase(slot int) uint32 { return uint32(UIDRangeBase + slot*UIDRangeSize) }

// freeSlot is the lowest slot not in used; ok is false when every slot is
// taken.
func freeSlot(used map[int]bool) (slot int, ok bool) {
	for s := range UIDRangeSlots {
		if !used[s] {
			return s, true
		}
	}
	return 0, false
}

// innerAccount is who the command runs as inside an isolated instance.
type innerAccount struct {
	name     string
	uid, gid uint32
	home     string
}

// DefaultUser is the launch template's user when it names none, as on
// Amazon Linux.
const DefaultUser = "ec2-user"

// chooseInner picks the uid of the launch template's user inside the
// instance from the host's /etc/passwd content (pure): the account's own
// uid and gid when the host has it (below 65536, so it maps), else the
// first uid from 1000 that no host account uses (so that a name lookup of
// the uid finds this user). "root" is uid 0 with home /root.
func chooseInner(name, passwd string) innerAccount {
	if name == "" {
		name = DefaultUser
	}
	if name == "root" {
		return innerAccount{name: "root", home: "/root"}
	}
	used := map[uint32]bool{}
	for _, line := range strings.Split(passwd, "\n") {
		f := strings.Split(line, ":")
		if len(f) < 4 {
			continue
		}
		uid, err1 := strconv.ParseUint(f[2], 10, 32)
		gid, err2 := strconv.ParseUint(f[3], 10, 32)
		if err1 != nil || err2 != nil {
			continue
		}
		if f[0] == name && uid != 0 && uid < UIDRangeSize && gid != 0 && gid < UIDRangeSize {
			return innerAccount{name: name, uid: uint32(uid), gid: uint32(gid), home: "/home/" + name}
		}
		used[uint32(uid)] = true
	}
	uid := uint32(1000)
	for used[uid] {
		uid++
	}
	return innerAccount{name: name, uid: uid, gid: uid, home: "/home/" + name}
}

// IsolatedHome is the home of the launch template's user inside an
// isolated instance (/home/ec2-user; /root for root).
func IsolatedHome(user string) string { return chooseInner(user, "").home }

// withAccount is an /etc/passwd (or, with group, /etc/group) content with
// the account's line in place of any line of the same name, or appended
// (pure).
func withAccount(content string, a innerAccount, group bool) string {
	if a.uid == 0 {
		return content // root is the host's root line
	}
	line := fmt.Sprintf("%s:x:%d:%d::%s:/bin/sh", a.name, a.uid, a.gid, a.home)
	if group {
		line = fmt.Sprintf("%s:x:%d:", a.name, a.gid)
	}
	var out []string
	for _, l := range strings.Split(strings.TrimRight(content, "\n"), "\n") {
		if name, _, _ := strings.Cut(l, ":"); name == a.name || l == "" {
			continue
		}
		out = append(out, l)
	}
	out = append(out, line)
	return strings.Join(out, "\n") + "\n"
}

// ShortHostname is the first label of an EC2 private DNS name
// (ip-10-0-128-4 of ip-10-0-128-4.ec2.internal), the instance's hostname.
func ShortHostname(fqdn string) string {
	short, _, _ := strings.Cut(fqdn, ".")
	return short
}

// hostsFile is the instance's /etc/hosts: loopback and its own names, so
// that its hostname resolves locally as on EC2 (pure).
func hostsFile(ip, fqdn string) string {
	var b strings.Builder
	b.WriteString("127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n")
	if ip != "" && fqdn != "" {
		names := fqdn
		if short := ShortHostname(fqdn); short != fqdn {
			names += " " + short
		}
		fmt.Fprintf(&b, "%s\t%s\n", ip, names)
	}
	return b.String()
}

// mountKind is one step of an isolated instance's filesystem set-up.
type mountKind string

const (
	mountPrivate  mountKind = "private"  // make every mount private, so nothing propagates to the host
	mountReadOnly mountKind = "readonly" // make every mount under Target read-only
	mountProc     mountKind = "proc"     // a new /proc for the PID namespace
	mountTmpfs    mountKind = "tmpfs"    // an empty tmpfs, Data its options
	mountBind     mountKind = "bind"     // Source (a host path) on Target, writable unless ReadOnly
	mountFile     mountKind = "file"     // a file of the set-up (Source names it) bound on Target, read-only
)

// mountStep is one step; the plan runs them in order.
type mountStep struct {
	Kind     mountKind
	Target   string
	Source   string
	Data     string
	ReadOnly bool
}

// mountInput is what the filesystem plan depends on.
type mountInput struct {
	HomeSource string   // the instance's home on the host
	Home       string   // where it appears inside (/home/ec2-user)
	RootUID    uint32   // the host uid of root inside (the range's base)
	Hide       []string // further host directories to hide (moat's state)
	Exists     func(p string) bool
	Files      []string // /etc files replaced (hosts, hostname, passwd, group)
}

// hidden are the host directories every isolated instance gets an empty,
// private one of: /run holds moat's state, other instances' directories
// and named namespaces; /home and /root are the host's accounts'.
var hidden = []string{"/tmp", "/var/tmp", "/dev/shm", "/run", "/home", "/root"}

// mountPlan is the filesystem an isolated instance sees (pure): the
// host's, read-only, with a new /proc, empty private /tmp, /var/tmp,
// /dev/shm, /run, /home and /root, its home bound writable at Home, the
// extra Hide directories emptied (unless already inside one of those) and
// the /etc files of the set-up bound over the host's. The set-up's files
// are written to a first tmpfs on /run, bound, then covered by the
// instance's own /run.
func mountPlan(in mountInput) []mountStep {
	owner := fmt.Sprintf("uid=%d,gid=%d", in.RootUID, in.RootUID)
	plan := []mountStep{
		{Kind: mountPrivate, Target: "/"},
		{Kind: mountReadOnly, Target: "/"},
		{Kind: mountProc, Target: "/proc"},
		{Kind: mountTmpfs, Target: "/run", Data: "mode=700,size=1m"},
	}
	for _, f := range in.Files {
		plan = append(plan, mountStep{Kind: mountFile, Source: path.Base(f), Target: f})
	}
	for _, d := range hidden {
		if !in.Exists(d) {
			continue
		}
		mode := "mode=1777"
		switch d {
		case "/run", "/home":
			mode = "mode=755"
		case "/root":
			mode = "mode=700"
		}
		data := mode + "," + owner
		if d == "/home" {
			data = mode // the host's root owns /home, as on EC2 inside
		}
		plan = append(plan, mountStep{Kind: mountTmpfs, Target: d, Data: data})
		if d == "/home" && strings.HasPrefix(in.Home, "/home/") {
			plan = append(plan, mountStep{Kind: mountBind, Source: in.HomeSource, Target: in.Home})
		}
	}
	if in.Home == "/root" {
		plan = append(plan, mountStep{Kind: mountBind, Source: in.HomeSource, Target: in.Home})
	}
	for _, h := range in.Hide {
		h = path.Clean(h)
		if !path.IsAbs(h) || !in.Exists(h) || slices.ContainsFunc(hidden, func(d string) bool { return within(h, d) }) {
			continue
		}
		plan = append(plan, mountStep{Kind: mountTmpfs, Target: h, Data: "mode=000,size=4k", ReadOnly: true})
	}
	return plan
}

// within says whether p is dir or below it.
func within(p, dir string) bool {
	return p == dir || strings.HasPrefix(p, strings.TrimSuffix(dir, "/")+"/")
}

// isolationFix explains why user namespaces cannot be made here and how to
// fix it (pure): sysctls are the values of the knobs that forbid them,
// by name, as read from /proc/sys ("" when absent).
func isolationFix(err error, sysctls map[string]string) error {
	var why, fix string
	switch {
	case sysctls["user.max_user_namespaces"] == "0":
		why = "user.max_user_namespaces is 0"
		fix = "sysctl -w user.max_user_namespaces=15000"
	case sysctls["kernel.unprivileged_userns_clone"] == "0":
		why = "kernel.unprivileged_userns_clone is 0"
		fix = "sysctl -w kernel.unprivileged_userns_clone=1"
	case sysctls["kernel.apparmor_restrict_unprivileged_userns"] == "1":
		why = "AppArmor restricts user namespaces (kernel.apparmor_restrict_unprivileged_userns is 1)"
		fix = "sysctl -w kernel.apparmor_restrict_unprivileged_userns=0"
	default:
		why = "the kernel refused one"
		fix = "enable user namespaces in the kernel (CONFIG_USER_NS) and sysctls"
	}
	return fmt.Errorf("this host forbids user namespaces, which isolate each instance like a separate machine (%s: %v): "+
		"allow them (%s, as root), or run instances as plain processes of the host with `local: {isolation: process}` in the stack file", why, err, fix)
}
