package instance

import (
	"errors"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
)

func TestFreeSlot(t *testing.T) {
	for _, tc := range []struct {
		used []int
		want int
	}{
		{nil, 0},
		{[]int{0}, 1},
		{[]int{0, 1, 3}, 2},
		{[]int{1, 2}, 0},
	} {
		used := map[int]bool{}
		for _, u := range tc.used {
			used[u] = true
		}
		if got, ok := freeSlot(used); !ok || got != tc.want {
			t.Errorf("freeSlot(%v) = %d, %v; want %d", tc.used, got, ok, tc.want)
		}
	}
	all := map[int]bool{}
	for s := range UIDRangeSlots {
		all[s] = true
	}
	if _, ok := freeSlot(all); ok {
		t.Error("freeSlot found a slot with every slot taken")
	}
	// Never root, never below the distributions' subuid ranges, never
	// past 2^31.
	if slotBase(0) == 0 || slotBase(0) < 1<<20 || uint64(slotBase(UIDRangeSlots-1))+UIDRangeSize > 1<<31 {
		t.Errorf("ranges from %d to %d", slotBase(0), slotBase(UIDRangeSlots-1)+UIDRangeSize)
	}
}

func TestUIDRangesExclusiveAndReleased(t *testing.T) {
	old := UIDRangeDir
	UIDRangeDir = filepath.Join(t.TempDir(), "uid-ranges")
	t.Cleanup(func() { UIDRangeDir = old })
	// Two owners allocating at once never get the same range.
	var mu sync.Mutex
	seen := map[uint32]string{}
	var wg sync.WaitGroup
	for i := range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			owner := []string{"stack-a", "stack-b"}[i%2]
			r, err := allocateUIDRange(owner, "i-"+string(rune('a'+i)))
			if err != nil {
				t.Error(err)
				return
			}
			mu.Lock()
			defer mu.Unlock()
			if prev, dup := seen[r.base]; dup {
				t.Errorf("range %d given to %s and %s", r.base, prev, owner)
			}
			seen[r.base] = owner
		}()
	}
	wg.Wait()
	// A crashed owner's ranges come back; the other's stay.
	n, err := ReleaseUIDRanges("stack-a")
	if err != nil || n != 10 {
		t.Fatalf("ReleaseUIDRanges = %d, %v; want 10", n, err)
	}
	left, _ := slotNames()
	if len(left) != 10 {
		t.Fatalf("%d ranges left, want stack-b's 10", len(left))
	}
	for _, c := range left {
		if !strings.HasPrefix(c, "stack-b ") {
			t.Errorf("left %q", c)
		}
	}
	r, err := allocateUIDRange("stack-c", "i-x")
	if err != nil || r.slot >= 20 {
		t.Fatalf("after release got slot %d, %v; want a freed one", r.slot, err)
	}
}

func TestChooseInner(t *testing.T) {
	passwd := "root:x:0:0:root:/root:/bin/bash\nnobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n" +
		"admin:x:1000:1000::/home/admin:/bin/bash\nweb:x:1005:1006::/srv/web:/bin/sh\nbig:x:70000:70000::/:/bin/sh\n"
	for _, tc := range []struct {
		name string
		want innerAccount
	}{
		{"", innerAccount{"ec2-user", 1001, 1001, "/home/ec2-user"}},     // default, the first free uid from 1000
		{"web", innerAccount{"web", 1005, 1006, "/home/web"}},            // the host's account's ids
		{"big", innerAccount{"big", 1001, 1001, "/home/big"}},            // does not fit the range: a free one
		{"root", innerAccount{"root", 0, 0, "/root"}},                    // root inside
		{"ubuntu", innerAccount{"ubuntu", 1001, 1001, "/home/ubuntu"}},   // unknown here
		{"nobody", innerAccount{"nobody", 65534, 65534, "/home/nobody"}}, // exists, fits
	} {
		if got := chooseInner(tc.name, passwd); got != tc.want {
			t.Errorf("chooseInner(%q) = %+v, want %+v", tc.name, got, tc.want)
		}
	}
}

func TestWithAccount(t *testing.T) {
	passwd := "root:x:0:0:root:/root:/bin/bash\nec2-user:x:1001:1001::/home/ec2-user:/bin/bash\n"
	a := innerAccount{"ec2-user", 1001, 1001, "/home/ec2-user"}
	want := "root:x:0:0:root:/root:/bin/bash\nec2-user:x:1001:1001::/home/ec2-user:/bin/sh\n"
	if got := withAccount(passwd, a, false); got != want {
		t.Errorf("passwd:\n%s\nwant:\n%s", got, want)
	}
	if got := withAccount("root:x:0:\n", innerAccount{"app", 1000, 1000, "/home/app"}, true); got != "root:x:0:\napp:x:1000:\n" {
		t.Errorf("group:\n%s", got)
	}
	if got := withAccount("root:x:0:0:root:/root:/bin/bash\n", innerAccount{"root", 0, 0, "/root"}, false); got != "root:x:0:0:root:/root:/bin/bash\n" {
		t.Errorf("root replaced its own line:\n%s", got)
	}
}

func TestHostnames(t *testing.T) {
	if got := ShortHostname("ip-10-0-128-4.ec2.internal"); got != "ip-10-0-128-4" {
		t.Errorf("ShortHostname = %q", got)
	}
	hosts := hostsFile("10.0.128.4", "ip-10-0-128-4.eu-west-1.compute.internal")
	if !strings.Contains(hosts, "\n10.0.128.4\tip-10-0-128-4.eu-west-1.compute.internal ip-10-0-128-4\n") ||
		!strings.HasPrefix(hosts, "127.0.0.1\tlocalhost\n") {
		t.Errorf("hosts:\n%s", hosts)
	}
	if hosts := hostsFile("", ""); strings.Count(hosts, "\n") != 2 {
		t.Errorf("hosts without a name:\n%s", hosts)
	}
}

func TestMountPlan(t *testing.T) {
	exists := func(p string) bool { return p != "/var/tmp" && p != "/missing" }
	plan := mountPlan(mountInput{HomeSource: "/proc/self/fd/7", Home: "/home/ec2-user", RootUID: 1 << 30,
		Hide:  []string{"/var/lib/moat", "/run/moat/web", "/root/.local/state/moat", "/missing", "relative"},
		Files: []string{"/etc/hosts", "/etc/hostname"}, Exists: exists})
	own := "uid=1073741824,gid=1073741824"
	want := []mountStep{
		{Kind: mountPrivate, Target: "/"},
		{Kind: mountReadOnly, Target: "/"},
		{Kind: mountProc, Target: "/proc"},
		{Kind: mountTmpfs, Target: "/run", Data: "mode=700,size=1m"},
		{Kind: mountFile, Source: "hosts", Target: "/etc/hosts"},
		{Kind: mountFile, Source: "hostname", Target: "/etc/hostname"},
		{Kind: mountTmpfs, Target: "/tmp", Data: "mode=1777," + own},
		{Kind: mountTmpfs, Target: "/dev/shm", Data: "mode=1777," + own},
		{Kind: mountTmpfs, Target: "/run", Data: "mode=755," + own},
		{Kind: mountTmpfs, Target: "/home", Data: "mode=755"},
		{Kind: mountBind, Source: "/proc/self/fd/7", Target: "/home/ec2-user"},
		{Kind: mountTmpfs, Target: "/root", Data: "mode=700," + own},
		// Only what the always-private directories do not cover already.
		{Kind: mountTmpfs, Target: "/var/lib/moat", Data: "mode=000,size=4k", ReadOnly: true},
	}
	if !reflect.DeepEqual(plan, want) {
		t.Errorf("plan:\n%v\nwant:\n%v", plan, want)
	}
	// Root's home is /root, bound after the /root tmpfs.
	plan = mountPlan(mountInput{HomeSource: "/h", Home: "/root", Exists: func(string) bool { return true }})
	if last := plan[len(plan)-1]; last != (mountStep{Kind: mountBind, Source: "/h", Target: "/root"}) {
		t.Errorf("root's plan ends with %+v", last)
	}
	for i, st := range plan {
		if st.Kind == mountBind && st.Target == "/home/root" {
			t.Errorf("step %d binds a home under /home for root", i)
		}
	}
}

func TestIsolationFix(t *testing.T) {
	cause := errors.New("operation not permitted")
	for _, tc := range []struct {
		sysctls map[string]string
		want    string
	}{
		{map[string]string{"user.max_user_namespaces": "0"}, "sysctl -w user.max_user_namespaces=15000"},
		{map[string]string{"user.max_user_namespaces": "100", "kernel.unprivileged_userns_clone": "0"}, "sysctl -w kernel.unprivileged_userns_clone=1"},
		{map[string]string{"kernel.apparmor_restrict_unprivileged_userns": "1"}, "kernel.apparmor_restrict_unprivileged_userns=0"},
		{map[string]string{}, "CONFIG_USER_NS"},
	} {
		msg := isolationFix(cause, tc.sysctls).Error()
		for _, w := range []string{tc.want, "local: {isolation: process}", "operation not permitted", "forbids user namespaces"} {
			if !strings.Contains(msg, w) {
				t.Errorf("%v: %q lacks %q", tc.sysctls, msg, w)
			}
		}
	}
}
