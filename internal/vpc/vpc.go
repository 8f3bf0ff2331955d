// Package vpc builds a stack's VPC on one Linux machine without touching
// the host's own networking: the VPC router is a network namespace
// (moat-<stack>-router) with one bridge per subnet whose address is the
// subnet's gateway; every node (instance, load balancer node, bastion)
// lives in its own namespace (moat-<stack>-<node>) with a veth into its
// subnet's bridge, its address and a default route via the gateway, and
// enforces its security groups with nftables (package secgroup). "The
// internet" is a namespace (moat-<stack>-internet) behind the router's
// uplink; private subnets reach it only through NAT (masquerade in the
// router), and it never opens connections to them. The host namespace
// gets no address, route, link or nftables table. With local.egress the
// internet namespace redirects TCP and DNS arriving from the VPC to
// moat's egress proxy (package egress), which carries them on from the
// host namespace in user space.
//
// Lifecycle: Up, then AddNode/RemoveNode as nodes come and go, then Down.
// Processes running in a namespace must be stopped before RemoveNode or
// Down (a namespace with a live process survives its name's deletion).
// After a crash, Reclaim removes what a previous run left.
package vpc

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"net/netip"
	"os"
	"reflect"
	"slices"
	"sync"

	"github.com/google/nftables"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"

	"github.com/moat-dev/moat/internal/nsenter"
	"github.com/moat-dev/moat/internal/plan"
	"github.com/moat-dev/moat/internal/secgroup"
	"github.com/moat-dev/moat/internal/secgroup/nft"
)

// Names of the VPC's own namespaces (node names must differ from these).
const (
	RouterNode   = "router"
	InternetNode = "internet"
)

// Options configure Up.
type Options struct {
	// StateDir is where the VPC records what it creates (vpc.json), for
	// Reclaim after a crash. Empty: no record (tests).
	StateDir string
	// Log receives progress; nil discards.
	Log *slog.Logger

	// failAt makes Up fail at the named step (tests).
	failAt string
}

// VPC is a stack's running network. Its methods are safe for concurrent
// use.
type VPC struct {
	plan     *plan.Plan
	stack    string
	stateDir string
	log      *slog.Logger

	mu      sync.Mutex
	state   state
	router  netns.NsHandle
	rh      *netlink.Handle
	inet    netns.NsHandle
	bridges map[string]int // subnet -> bridge index in the router namespace
	alloc   map[string]*Allocator
	nodes   map[string]*Node
	down    bool
	// failAt makes UpdateSecurityGroups fail at "sgupdate NODE" and
	// updateSets at "sets NODE" (tests).
	failAt string
}

// Node is one network interface in the VPC: its own namespace.
type Node struct {
	Name   string
	Kind   string
	Owner  string
	Subnet string
	Addr   netip.Addr
	Groups []string
	// NSPath is the namespace's bind mount (/run/netns/moat-<stack>-<node>):
	// run processes there (setns), or dial and listen with DialFunc and
	// ListenIn.
	NSPath string

	ns    netns.NsHandle
	rules secgroup.RuleSet
}

// NodeSpec describes a node to add.
type NodeSpec struct {
	// Name is unique in the stack (an instance id, lb-<lb>-<i>, bastion).
	Name string
	// Kind and Owner are for reasoning (secgroup.Kind*, LB or group name).
	Kind  string
	Owner string
	// Subnet is the plan subnet's name.
	Subnet string
	// Addr is a static address from the plan, or zero to allocate one.
	Addr   netip.Addr
	Groups []string
}

// Dial returns a dialer whose sockets live in the node's namespace.
func (n *Node) Dial() func(ctx context.Context, network, addr string) (net.Conn, error) {
	return DialFunc(n.NSPath)
}

// Listen opens a listener in the node's namespace.
func (n *Node) Listen(network, addr string) (net.Listener, error) {
	return ListenIn(n.NSPath, network, addr)
}

// Up builds the VPC of a plan. On failure it removes everything it made.
// The stack's leftovers from a crashed run must be reclaimed first
// (Reclaim); Up fails if the router namespace exists.
func Up(ctx context.Context, p *plan.Plan, opts Options) (_ *VPC, err error) {
	log := opts.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	v := &VPC{plan: p, stack: p.Stack, stateDir: opts.StateDir, log: log,
		state: state{Stack: p.Stack}, bridges: map[string]int{}, alloc: map[string]*Allocator{}, nodes: map[string]*Node{},
		router: -1, inet: -1}
	defer func() {
		if err != nil {
			if derr := v.Down(context.WithoutCancel(ctx)); derr != nil {
				err = errors.Join(err, fmt.Errorf("clean up after a failed start: %w", derr))
			}
		}
	}()
	step := func(name string) error {
		if opts.failAt == name {
			return fmt.Errorf("build vpc: injected failure at %s", name)
		}
		return ctx.Err()
	}
	for _, sn := range p.Subnets {
		v.alloc[sn.Name] = NewAllocator(sn)
	}

	// Router namespace.
	if v.router, err = v.createNS(RouterNode); err != nil {
		return nil, err
	}
	if v.rh, err = netlink.NewHandleAt(v.router); err != nil {
		return nil, fmt.Errorf("netlink in router namespace: %w", err)
	}
	lo, err := v.rh.LinkByName("lo")
	if err != nil {
		return nil, fmt.Errorf("router loopback: %w", err)
	}
	if err := v.rh.LinkSetUp(lo); err != nil {
		return nil, fmt.Errorf("router loopback up: %w", err)
	}
	if err := v.rh.AddrAdd(lo, addr(netip.PrefixFrom(MetadataAddr, 32))); err != nil {
		return nil, fmt.Errorf("add metadata address: %w", err)
	}
	if err := writeSysctl(v.router, "net/ipv4/ip_forward", "1"); err != nil {
		return nil, fmt.Errorf("enable forwarding in the router: %w", err)
	}
	if err := step("router"); err != nil {
		return nil, err
	}

	// One bridge per subnet, addressed with the gateway.
	for i, sn := range p.Subnets {
		br := &netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Name: linkName(p.Stack, "subnet/"+sn.Name, fmt.Sprintf("b%d", i))}}
		if err := v.rh.LinkAdd(br); err != nil {
			return nil, fmt.Errorf("add bridge for subnet %s: %w", sn.Name, err)
		}
		if err := v.rh.AddrAdd(br, addr(netip.PrefixFrom(sn.Gateway, sn.CIDR.Bits()))); err != nil {
			return nil, fmt.Errorf("address bridge of subnet %s: %w", sn.Name, err)
		}
		if err := v.rh.LinkSetUp(br); err != nil {
			return nil, fmt.Errorf("bridge of subnet %s up: %w", sn.Name, err)
		}
		v.bridges[sn.Name] = br.Index
	}
	if err := step("bridges"); err != nil {
		return nil, err
	}

	// The internet namespace behind the uplink (the internet gateway).
	if v.inet, err = v.createNS(InternetNode); err != nil {
		return nil, err
	}
	uplink := linkName(p.Stack, "uplink", "up")
	if err := v.rh.LinkAdd(&netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: uplink}, PeerName: "eth0",
		PeerNamespace: netlink.NsFd(int(v.inet))}); err != nil {
		return nil, fmt.Errorf("add uplink: %w", err)
	}
	up, err := v.rh.LinkByName(uplink)
	if err != nil {
		return nil, fmt.Errorf("find uplink: %w", err)
	}
	if err := v.rh.AddrAdd(up, addr(uplinkRouter)); err != nil {
		return nil, fmt.Errorf("address uplink: %w", err)
	}
	if err := v.rh.LinkSetUp(up); err != nil {
		return nil, fmt.Errorf("uplink up: %w", err)
	}
	if err := configureEnd(v.inet, netip.PrefixFrom(secgroup.InternetAddr, uplinkNet.Bits()), uplinkRouter.Addr()); err != nil {
		return nil, fmt.Errorf("internet namespace: %w", err)
	}
	if err := v.rh.RouteAdd(&netlink.Route{LinkIndex: up.Attrs().Index, Gw: net.IP(secgroup.InternetAddr.AsSlice())}); err != nil {
		return nil, fmt.Errorf("router default route: %w", err)
	}
	if err := step("uplink"); err != nil {
		return nil, err
	}

	// Route tables, NAT.
	c, err := nftables.New(nftables.WithNetNSFd(int(v.router)))
	if err != nil {
		return nil, fmt.Errorf("nftables in router namespace: %w", err)
	}
	if err := applyRouter(c, policyOf(p, uplink)); err != nil {
		return nil, err
	}
	if err := nft.ReplaceNACLs(c, secgroup.CompileNACLs(p), v.bridgeName); err != nil {
		return nil, err
	}
	if err := step("nat"); err != nil {
		return nil, err
	}
	if p.Local.Egress {
		ic, err := nftables.New(nftables.WithNetNSFd(int(v.inet)))
		if err != nil {
			return nil, fmt.Errorf("nftables in internet namespace: %w", err)
		}
		if err := applyEgress(ic); err != nil {
			return nil, err
		}
	}
	log.Info("vpc up", "stack", p.Stack, "cidr", p.VPC.CIDR, "subnets", len(p.Subnets))
	return v, nil
}

func addr(p netip.Prefix) *netlink.Addr {
	return &netlink.Addr{IPNet: &net.IPNet{IP: net.IP(p.Addr().AsSlice()), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen())}}
}

// createNS records then creates a namespace of the stack.
func (v *VPC) createNS(node string) (netns.NsHandle, error) {
	name := NamespaceName(v.stack, node)
	v.state.Namespaces = append(v.state.Namespaces, name)
	if err := writeState(v.stateDir, v.state); err != nil {
		return -1, err
	}
	h, err := nsenter.NewNamed(name)
	if errors.Is(err, os.ErrExist) {
		// Not ours: leave it to Reclaim.
		v.forgetNS(name)
		return -1, fmt.Errorf("%w (a previous run's leftover? reclaim it first)", err)
	}
	return h, err
}

func (v *VPC) forgetNS(name string) {
	v.state.Namespaces = slices.DeleteFunc(v.state.Namespaces, func(n string) bool { return n == name })
}

// configureEnd sets up a node's side: lo up, eth0 with its address, up,
// default route via the gateway.
func configureEnd(h netns.NsHandle, a netip.Prefix, gw netip.Addr) error {
	nh, err := netlink.NewHandleAt(h)
	if err != nil {
		return fmt.Errorf("netlink: %w", err)
	}
	defer nh.Close()
	lo, err := nh.LinkByName("lo")
	if err != nil {
		return fmt.Errorf("loopback: %w", err)
	}
	if err := nh.LinkSetUp(lo); err != nil {
		return fmt.Errorf("loopback up: %w", err)
	}
	eth, err := nh.LinkByName("eth0")
	if err != nil {
		return fmt.Errorf("eth0: %w", err)
	}
	if err := nh.AddrAdd(eth, addr(a)); err != nil {
		return fmt.Errorf("address eth0: %w", err)
	}
	if err := nh.LinkSetUp(eth); err != nil {
		return fmt.Errorf("eth0 up: %w", err)
	}
	if err := nh.RouteAdd(&netlink.Route{LinkIndex: eth.Attrs().Index, Gw: net.IP(gw.AsSlice())}); err != nil {
		return fmt.Errorf("default route via %s: %w", gw, err)
	}
	return nil
}

// Stack is the VPC's stack name.
func (v *VPC) Stack() string { return v.stack }

// RouterPath is the router namespace's path (for ListenIn, e.g. the
// metadata server on MetadataAddr:80).
func (v *VPC) RouterPath() string { return NamespacePath(v.stack, RouterNode) }

// InternetPath is the internet namespace's path: tests and `moat reach
// --probe` dial from it; its address is secgroup.InternetAddr.
func (v *VPC) InternetPath() string { return NamespacePath(v.stack, InternetNode) }

// AllocateAddr takes a free instance address in a subnet.
func (v *VPC) AllocateAddr(subnet string) (netip.Addr, error) {
	v.mu.Lock()
	defer v.mu.Unlock()
	a, ok := v.alloc[subnet]
	if !ok {
		return netip.Addr{}, fmt.Errorf("allocate an address: no subnet %q in the plan", subnet)
	}
	return a.Allocate()
}

// ReleaseAddr returns an address taken with AllocateAddr that no node
// uses (RemoveNode releases a node's address itself).
func (v *VPC) ReleaseAddr(subnet string, ip netip.Addr) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if a, ok := v.alloc[subnet]; ok {
		a.Release(ip)
	}
}

// Membership is the live membership: every node and its groups.
func (v *VPC) Membership() secgroup.Membership {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.membershipLocked()
}

func (v *VPC) membershipLocked() secgroup.Membership {
	var m secgroup.Membership
	for _, n := range v.nodes {
		m.Members = append(m.Members, secgroup.Member{Name: n.Name, Kind: n.Kind, Owner: n.Owner, Subnet: n.Subnet, Addr: n.Addr, Groups: n.Groups})
	}
	slices.SortFunc(m.Members, func(a, b secgroup.Member) int { return a.Addr.Compare(b.Addr) })
	return m
}

// Node returns a live node.
func (v *VPC) Node(name string) (*Node, bool) {
	v.mu.Lock()
	defer v.mu.Unlock()
	n, ok := v.nodes[name]
	return n, ok
}

// AddNode creates a node's namespace with its security groups enforced
// (before its link comes up), a veth into its subnet's bridge, its address
// (spec.Addr, or one allocated when AllocateAddr was not used: pass the
// zero Addr) and a default route; then adds its address to the group sets
// of every node that references its groups. On failure nothing is left.
func (v *VPC) AddNode(ctx context.Context, spec NodeSpec) (_ *Node, err error) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.down {
		return nil, fmt.Errorf("add node %s: the vpc is down", spec.Name)
	}
	if spec.Name == "" || spec.Name == RouterNode || spec.Name == InternetNode {
		return nil, fmt.Errorf("add node %q: reserved or empty name", spec.Name)
	}
	if _, dup := v.nodes[spec.Name]; dup {
		return nil, fmt.Errorf("add node %s: already exists", spec.Name)
	}
	sn, ok := v.plan.Subnet(spec.Subnet)
	if !ok {
		return nil, fmt.Errorf("add node %s: no subnet %q in the plan", spec.Name, spec.Subnet)
	}
	al := v.alloc[sn.Name]
	ip := spec.Addr
	if ip.IsValid() {
		for _, o := range v.nodes {
			if o.Addr == ip {
				return nil, fmt.Errorf("add node %s: address %s is in use by %s", spec.Name, ip, o.Name)
			}
		}
		// Allocated with AllocateAddr (already taken) or static.
		if rerr := al.Reserve(ip); rerr != nil && !al.used[ip] {
			return nil, fmt.Errorf("add node %s: %w", spec.Name, rerr)
		}
	} else if ip, err = al.Allocate(); err != nil {
		return nil, fmt.Errorf("add node %s: %w", spec.Name, err)
	}
	// n, not the named result: a failing return sets that to nil before
	// the clean-up below runs.
	n := &Node{Name: spec.Name, Kind: spec.Kind, Owner: spec.Owner, Subnet: sn.Name, Addr: ip,
		Groups: slices.Clone(spec.Groups), NSPath: NamespacePath(v.stack, spec.Name), ns: -1}
	defer func() {
		if err != nil {
			v.destroyNode(n)
			al.Release(ip)
			_ = writeState(v.stateDir, v.state)
		}
	}()
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	m := v.membershipLocked()
	m.Members = append(m.Members, secgroup.Member{Name: n.Name, Kind: n.Kind, Owner: n.Owner, Subnet: n.Subnet, Addr: n.Addr, Groups: n.Groups})
	if n.rules, err = secgroup.Compile(v.plan, n.Name, n.Groups, m); err != nil {
		return nil, fmt.Errorf("add node %s: %w", n.Name, err)
	}
	if n.ns, err = v.createNS(n.Name); err != nil {
		return nil, fmt.Errorf("add node %s: %w", n.Name, err)
	}
	c, err := nftables.New(nftables.WithNetNSFd(int(n.ns)))
	if err != nil {
		return nil, fmt.Errorf("add node %s: nftables: %w", n.Name, err)
	}
	if err := nft.Apply(c, n.rules); err != nil {
		return nil, fmt.Errorf("add node %s: %w", n.Name, err)
	}
	veth := linkName(v.stack, "node/"+n.Name, "v")
	if err := v.rh.LinkAdd(&netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: veth, MasterIndex: v.bridges[sn.Name]},
		PeerName: "eth0", PeerNamespace: netlink.NsFd(int(n.ns))}); err != nil {
		return nil, fmt.Errorf("add node %s: veth: %w", n.Name, err)
	}
	vl, err := v.rh.LinkByName(veth)
	if err == nil {
		err = v.rh.LinkSetUp(vl)
	}
	if err != nil {
		return nil, fmt.Errorf("add node %s: veth up: %w", n.Name, err)
	}
	if err := configureEnd(n.ns, netip.PrefixFrom(ip, sn.CIDR.Bits()), sn.Gateway); err != nil {
		return nil, fmt.Errorf("add node %s: %w", n.Name, err)
	}
	v.nodes[n.Name] = n
	if err := v.updateSets(m, n.Groups); err != nil {
		// Take the address back out of the sets already updated: a node
		// given it later must not inherit this one's groups.
		delete(v.nodes, n.Name)
		if rerr := v.updateSets(v.membershipLocked(), n.Groups); rerr != nil {
			err = errors.Join(err, fmt.Errorf("take %s back out of group sets: %w", ip, rerr))
		}
		return nil, fmt.Errorf("add node %s: %w", n.Name, err)
	}
	v.log.Debug("node added", "node", n.Name, "addr", ip, "subnet", sn.Name, "groups", n.Groups)
	return n, nil
}

// UpdateSecurityGroups applies changed security group rules to every
// running node, as AWS applies a group's rule changes to the instances in
// it at once: each node whose compiled rules change gets them replaced in
// one nftables transaction, and established connections stay open. It
// returns the names of the nodes it changed. Which groups a node is in
// does not change here. It is all or nothing: when a node's rules cannot
// be replaced, the nodes already changed get their old rules back and the
// VPC keeps the old groups (for nodes added later too).
func (v *VPC) UpdateSecurityGroups(ctx context.Context, groups []plan.SecurityGroup) ([]string, error) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.down {
		return nil, errors.New("update security groups: the vpc is down")
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("update security groups: %w", err)
	}
	np := *v.plan
	np.SecurityGroups = groups
	m := v.membershipLocked()
	// Compile every node first (pure): nothing changes if one fails.
	changed := map[string]secgroup.RuleSet{}
	for name, n := range v.nodes {
		rs, err := secgroup.Compile(&np, name, n.Groups, m)
		if err != nil {
			return nil, fmt.Errorf("update security groups of %s: %w", name, err)
		}
		if !rs.SameRules(n.rules) {
			changed[name] = rs
		}
	}
	// No context checks from here on: stopping half-way would leave nodes
	// of one group enforcing different rules.
	var done []string
	for _, name := range slices.Sorted(maps.Keys(changed)) {
		n := v.nodes[name]
		if err := v.replaceRules(n, changed[name]); err != nil {
			errs := []error{fmt.Errorf("update security groups of %s: %w", name, err)}
			for _, d := range done {
				dn := v.nodes[d]
				old, cerr := secgroup.Compile(v.plan, d, dn.Groups, m)
				if cerr == nil {
					cerr = v.replaceRules(dn, old)
				}
				if cerr != nil {
					errs = append(errs, fmt.Errorf("restore the previous rules of %s (it keeps the new ones): %w", d, cerr))
				}
			}
			return nil, errors.Join(errs...)
		}
		done = append(done, name)
	}
	v.plan = &np
	return done, nil
}

// UpdateNetworkACLs applies changed network ACLs (entries and subnet
// associations) to the running VPC at once, as on AWS: the router's
// table inet moat-nacl is replaced in one transaction. Being stateless,
// the new rules apply to established connections too. It reports whether
// anything changed; on failure the old rules stay.
func (v *VPC) UpdateNetworkACLs(ctx context.Context, acls []plan.NetworkACL) (bool, error) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.down {
		return false, errors.New("update network ACLs: the vpc is down")
	}
	if err := ctx.Err(); err != nil {
		return false, fmt.Errorf("update network ACLs: %w", err)
	}
	np := v.plan.WithNetworkACLs(acls)
	rs := secgroup.CompileNACLs(np)
	if reflect.DeepEqual(rs, secgroup.CompileNACLs(v.plan)) {
		v.plan = np
		return false, nil
	}
	c, err := nftables.New(nftables.WithNetNSFd(int(v.router)))
	if err != nil {
		return false, fmt.Errorf("update network ACLs: nftables in router namespace: %w", err)
	}
	if err := nft.ReplaceNACLs(c, rs, v.bridgeName); err != nil {
		return false, fmt.Errorf("update network ACLs: %w", err)
	}
	v.plan = np
	return true, nil
}

// bridgeName is the name of a subnet's bridge in the router namespace.
func (v *VPC) bridgeName(subnet string) (string, error) {
	for i, sn := range v.plan.Subnets {
		if sn.Name == subnet {
			return linkName(v.stack, "subnet/"+sn.Name, fmt.Sprintf("b%d", i)), nil
		}
	}
	return "", fmt.Errorf("subnet %s is not in the plan", subnet)
}

// replaceRules replaces a node's table in one transaction and records the
// rule set it now enforces.
func (v *VPC) replaceRules(n *Node, rs secgroup.RuleSet) error {
	if v.failAt == "sgupdate "+n.Name {
		return errors.New("injected failure")
	}
	c, err := nftables.New(nftables.WithNetNSFd(int(n.ns)))
	if err == nil {
		err = nft.Replace(c, rs)
	}
	if err != nil {
		return err
	}
	n.rules = rs
	return nil
}

// updateSets rewrites the group sets of every node referencing one of the
// groups.
func (v *VPC) updateSets(m secgroup.Membership, groups []string) error {
	var errs []error
	for _, other := range v.nodes {
		for _, g := range groups {
			if !other.rules.References(g) {
				continue
			}
			c, err := nftables.New(nftables.WithNetNSFd(int(other.ns)))
			if err == nil && v.failAt == "sets "+other.Name {
				err = errors.New("injected failure")
			}
			if err == nil {
				err = nft.ReplaceSet(c, g, m.Addrs(g))
			}
			if err != nil {
				errs = append(errs, fmt.Errorf("update members of %s in %s: %w", g, other.Name, err))
			}
		}
	}
	return errors.Join(errs...)
}

// RemoveNode takes a node's address out of every group set, then deletes
// its namespace (with its veth and rules) and frees its address. Stop the
// node's processes first.
func (v *VPC) RemoveNode(ctx context.Context, name string) error {
	v.mu.Lock()
	defer v.mu.Unlock()
	n, ok := v.nodes[name]
	if !ok {
		return nil
	}
	delete(v.nodes, name)
	err := v.updateSets(v.membershipLocked(), n.Groups)
	if derr := v.destroyNode(n); derr != nil {
		err = errors.Join(err, derr)
	}
	if err == nil {
		v.alloc[n.Subnet].Release(n.Addr)
	} else {
		// Some group set may still hold the address (or a link may still
		// carry it): a node given it later would inherit this one's
		// groups. It stays taken for the VPC's life.
		err = errors.Join(err, fmt.Errorf("address %s is not reused", n.Addr))
	}
	if serr := writeState(v.stateDir, v.state); serr != nil {
		err = errors.Join(err, serr)
	}
	if err != nil {
		return fmt.Errorf("remove node %s: %w", name, err)
	}
	return nil
}

// destroyNode cuts a node's veth off its bridge, then deletes its
// namespace. The veth is deleted explicitly so the node is unreachable at
// once even if a leftover socket or process still holds the namespace.
func (v *VPC) destroyNode(n *Node) error {
	if v.rh != nil {
		if l, err := v.rh.LinkByName(linkName(v.stack, "node/"+n.Name, "v")); err == nil {
			if err := v.rh.LinkDel(l); err != nil {
				return fmt.Errorf("delete veth of %s: %w", n.Name, err)
			}
		}
	}
	if n.ns >= 0 {
		n.ns.Close()
		n.ns = -1
	}
	name := NamespaceName(v.stack, n.Name)
	if err := deleteNamed(name); err != nil {
		return err
	}
	v.forgetNS(name)
	return nil
}

// Down removes every node and the VPC's own namespaces and its state file.
// It is safe after a partial Up and idempotent. Stop processes first.
func (v *VPC) Down(ctx context.Context) error {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.down = true
	var errs []error
	for name, n := range v.nodes {
		if err := v.destroyNode(n); err != nil {
			errs = append(errs, err)
		}
		delete(v.nodes, name)
	}
	if v.rh != nil {
		v.rh.Close()
		v.rh = nil
	}
	for _, h := range []*netns.NsHandle{&v.router, &v.inet} {
		if *h >= 0 {
			h.Close()
			*h = -1
		}
	}
	// Everything recorded, including namespaces whose creation failed
	// half-way.
	for _, name := range slices.Clone(v.state.Namespaces) {
		if err := deleteNamed(name); err != nil {
			errs = append(errs, err)
			continue
		}
		v.forgetNS(name)
	}
	if len(errs) == 0 && v.stateDir != "" {
		if err := os.Remove(v.stateDir + "/" + stateFile); err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, fmt.Errorf("remove vpc state: %w", err))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("vpc down: %w", err)
	}
	v.log.Info("vpc down", "stack", v.stack)
	return nil
}

// closeHandles drops the VPC's open handles without deleting anything, as
// a crash would (tests).
func (v *VPC) closeHandles() {
	v.mu.Lock()
	defer v.mu.Unlock()
	for _, n := range v.nodes {
		n.ns.Close()
	}
	v.rh.Close()
	v.router.Close()
	v.inet.Close()
	v.down = true
}

// RouterListen opens a listener in the router namespace, e.g. the
// instance metadata server on MetadataAddr:80.
func (v *VPC) RouterListen(network, addr string) (net.Listener, error) {
	return ListenIn(v.RouterPath(), network, addr)
}
