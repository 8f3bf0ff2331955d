// Package cfnstandin is a LOCAL STAND-IN for the AWS CloudFormation API (and
// the few S3 and STS calls moat deploy makes), for tests only. It is not
// AWS and does not create anything: it is an httptest server that speaks
// the same wire protocols the aws-sdk-go-v2 clients use (CloudFormation
// and STS: the awsquery protocol, form-encoded Action=... requests and XML
// responses in the 2010-05-15 / 2011-06-15 namespaces; S3: REST with path-
// style addressing), keeps stacks, change sets, events and objects in
// memory, and plays CloudFormation's state machine one step per request.
//
// What it simulates:
//   - CreateChangeSet (CREATE or UPDATE) diffs the submitted template's
//     Resources against the stack's (Add, Modify, Remove; a changed Type is
//     a replacement); when neither resources, outputs nor parameters
//     changed, the change set fails with CloudFormation's "didn't contain
//     changes" reason. Missing
//     capabilities for IAM resources and missing parameter values are
//     rejected as CloudFormation rejects them.
//   - ExecuteChangeSet plays resource events (CREATE_IN_PROGRESS ->
//     CREATE_COMPLETE, UPDATE_..., DELETE_... during cleanup) one per
//     request, then the stack's terminal status.
//   - A resource listed in Fail fails with its reason: CREATE_FAILED (the
//     resource started at the same time is cancelled), ROLLBACK_IN_PROGRESS,
//     deletes of what was created, ROLLBACK_COMPLETE; on update,
//     UPDATE_FAILED -> UPDATE_ROLLBACK_IN_PROGRESS -> UPDATE_ROLLBACK_COMPLETE
//     with the previous template restored.
//   - DeleteStack plays DELETE events in reverse order; a deleted stack is
//     still described by its id, as on AWS.
//   - Outputs are resolved with made-up values (Ref -> a physical id,
//     Fn::GetAtt -> "<id>.<attr>.standin.invalid", Fn::Sub, Fn::Join).
//
// Requests must carry a SigV4 Authorization header (the stand-in does not
// check the signature, only that the client signed with some credentials);
// the access key ids seen are recorded.
package cfnstandin

import (
	"bytes"
	"encoding/json"
	"encoding/xml"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"reflect"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"go.yaml.in/yaml/v3"
)

const (
	// Account is the account id the stand-in reports (its region is us-east-1).
	Account = "123456789012"
	cfnNS   = "http://cloudformation.amazonaws.com/doc/2010-05-15/"
	stsNS   = "https://sts.amazonaws.com/doc/2011-06-15/"
	ec2NS   = "http://ec2.amazonaws.com/doc/2016-11-15/"
	// MaxTemplateBody is CloudFormation's limit for TemplateBody.
	MaxTemplateBody = 51200
)

// Zones are the availability zones the stand-in's account has.
var Zones = []string{"us-east-1a", "us-east-1b", "us-east-1c", "us-east-1d", "us-east-1f"}

// Server is the stand-in. Create it with New; configure the exported
// fields before the first request.
type Server struct {
	*httptest.Server

	// Fail makes the named logical resources fail with the given reason
	// when they are created or updated.
	Fail map[string]string
	// PageSize is the number of events per DescribeStackEvents page (AWS
	// uses 100); small values exercise pagination.
	PageSize int

	mu      sync.Mutex
	stacks  []*stack // every stack ever made, deleted ones included
	seq     int
	clock   time.Time
	objects map[string][]byte // "bucket/key"
	buckets map[string]bool
	calls   []string
	keys    map[string]bool
}

// New starts a stand-in on loopback. Close it when done.
func New() *Server {
	s := &Server{
		PageSize: 100,
		Fail:     map[string]string{},
		clock:    time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC),
		objects:  map[string][]byte{},
		buckets:  map[string]bool{},
		keys:     map[string]bool{},
	}
	s.Server = httptest.NewServer(http.HandlerFunc(s.serve))
	return s
}

// Calls returns the actions served so far ("CreateChangeSet", "s3:PutObject", ...).
func (s *Server) Calls() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.calls)
}

// AccessKeys returns the access key ids requests were signed with.
func (s *Server) AccessKeys() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for k := range s.keys {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// Object returns an uploaded S3 object.
func (s *Server) Object(bucket, key string) ([]byte, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	b, ok := s.objects[bucket+"/"+key]
	return b, ok
}

// Objects lists uploaded objects as "bucket/key".
func (s *Server) Objects() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for k := range s.objects {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// CreateBucket makes a bucket exist, as if made beforehand.
func (s *Server) CreateBucket(name string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.buckets[name] = true
}

// StackStatus returns the status of the live stack with that name, or ""
// when there is none.
func (s *Server) StackStatus(name string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if st := s.live(name); st != nil {
		return st.status
	}
	return ""
}

// Resources returns the live stack's logical resource ids, sorted.
func (s *Server) Resources(name string) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.live(name)
	if st == nil {
		return nil
	}
	var out []string
	for id := range st.physical {
		out = append(out, id)
	}
	sort.Strings(out)
	return out
}

// Parameter returns a parameter value of the live stack.
func (s *Server) Parameter(stackName, key string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if st := s.live(stackName); st != nil {
		return st.params[key]
	}
	return ""
}

// ResourceProperty returns a property of a deployed resource, as JSON.
func (s *Server) ResourceProperty(stackName, logicalID, prop string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.live(stackName)
	if st == nil || st.tmpl == nil {
		return ""
	}
	r, ok := st.tmpl.resources[logicalID]
	if !ok {
		return ""
	}
	b, _ := json.Marshal(r.props[prop])
	return string(b)
}

type stack struct {
	name, id       string
	status, reason string
	created        time.Time
	tmpl           *template // deployed template (nil before the first execute)
	params         map[string]string
	physical       map[string]string // logical id -> physical id
	events         []event           // oldest first
	outputs        [][3]string       // key, value, description
	pending        []func()          // steps of the operation in progress
	changeSets     []*changeSet
	capabilities   []string
}

type event struct {
	id, logical, physical, typ, status, reason string
	at                                         time.Time
}

type changeSet struct {
	name, id, typ string
	status        string
	reason        string
	exec          string
	describes     int
	tmpl          *template
	params        map[string]string
	changes       []change
	other         bool // outputs or parameters changed (executable with no resource changes)
	caps          []string
}

type change struct{ action, logical, typ, replacement string }

type template struct {
	body      []byte
	order     []string
	resources map[string]resource
	params    map[string]param
	outputs   []outputDef
}

type resource struct {
	typ   string
	props map[string]any
}

type param struct {
	hasDefault bool
	def        string
}

type outputDef struct {
	name, desc string
	value      any
}

// ---- HTTP ----

func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	auth := r.Header.Get("Authorization")
	m := regexp.MustCompile(`Credential=([^/]+)/`).FindStringSubmatch(auth)
	if !strings.HasPrefix(auth, "AWS4-HMAC-SHA256 ") || m == nil {
		writeErr(w, http.StatusForbidden, cfnNS, "MissingAuthenticationToken", "Request is missing Authentication Token")
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.keys[m[1]] = true
	if r.Method == http.MethodPost && r.URL.Path == "/" && strings.HasPrefix(r.Header.Get("Content-Type"), "application/x-www-form-urlencoded") {
		if err := r.ParseForm(); err != nil {
			writeErr(w, 400, cfnNS, "MalformedQueryString", err.Error())
			return
		}
		s.query(w, r.PostForm)
		return
	}
	s.s3(w, r)
}

func (s *Server) query(w http.ResponseWriter, f url.Values) {
	action := f.Get("Action")
	s.calls = append(s.calls, action)
	s.tick()
	switch action {
	case "GetCallerIdentity":
		writeXML(w, stsNS, action, fmt.Sprintf("<Arn>arn:aws:iam::%s:user/standin</Arn><UserId>AIDASTANDIN</UserId><Account>%s</Account>", Account, Account))
	case "DescribeStacks":
		s.describeStacks(w, f)
	case "CreateChangeSet":
		s.createChangeSet(w, f)
	case "DescribeChangeSet":
		s.describeChangeSet(w, f)
	case "ExecuteChangeSet":
		s.executeChangeSet(w, f)
	case "DeleteChangeSet":
		s.deleteChangeSet(w, f)
	case "DescribeStackEvents":
		s.describeStackEvents(w, f)
	case "DeleteStack":
		s.deleteStack(w, f)
	case "DescribeAvailabilityZones":
		// EC2 (ec2query): the zones of us-east-1, for moat deploy's check.
		var b strings.Builder
		fmt.Fprintf(&b, `<DescribeAvailabilityZonesResponse xmlns="%s"><requestId>standin-request</requestId><availabilityZoneInfo>`, ec2NS)
		for _, z := range Zones {
			fmt.Fprintf(&b, "<item><zoneName>%s</zoneName><zoneState>available</zoneState><regionName>us-east-1</regionName></item>", z)
		}
		b.WriteString("</availabilityZoneInfo></DescribeAvailabilityZonesResponse>")
		w.Header().Set("Content-Type", "text/xml")
		io.WriteString(w, b.String())
	default:
		writeErr(w, 400, cfnNS, "InvalidAction", "the stand-in does not implement "+action)
	}
}

func writeXML(w http.ResponseWriter, ns, action, inner string) {
	w.Header().Set("Content-Type", "text/xml")
	fmt.Fprintf(w, `<%sResponse xmlns="%s"><%sResult>%s</%sResult><ResponseMetadata><RequestId>standin-request</RequestId></ResponseMetadata></%sResponse>`,
		action, ns, action, inner, action, action)
}

func writeErr(w http.ResponseWriter, status int, ns, code, msg string) {
	w.Header().Set("Content-Type", "text/xml")
	w.WriteHeader(status)
	fmt.Fprintf(w, `<ErrorResponse xmlns="%s"><Error><Type>Sender</Type><Code>%s</Code><Message>%s</Message></Error><RequestId>standin-request</RequestId></ErrorResponse>`, ns, code, esc(msg))
}

func esc(s string) string {
	var b bytes.Buffer
	xml.EscapeText(&b, []byte(s))
	return b.String()
}

func ts(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05.000Z") }

func list(f url.Values, prefix string) []string {
	var out []string
	for i := 1; ; i++ {
		v, ok := f[fmt.Sprintf("%s.member.%d", prefix, i)]
		if !ok {
			return out
		}
		out = append(out, v[0])
	}
}

// ---- state ----

// live finds a stack that is not deleted by name, or any stack by id.
func (s *Server) live(nameOrID string) *stack {
	for _, st := range s.stacks {
		if st.id == nameOrID {
			return st
		}
		if st.name == nameOrID && st.status != "DELETE_COMPLETE" {
			return st
		}
	}
	return nil
}

func (s *Server) now() time.Time {
	s.clock = s.clock.Add(time.Second)
	return s.clock
}

// tick advances every operation in progress by one step.
func (s *Server) tick() {
	for _, st := range s.stacks {
		if len(st.pending) > 0 {
			step := st.pending[0]
			st.pending = st.pending[1:]
			step()
		}
	}
}

func (s *Server) emit(st *stack, logical, typ, status, reason string) {
	s.seq++
	phys := st.physical[logical]
	if logical == st.name {
		phys, typ = st.id, "AWS::CloudFormation::Stack"
	}
	st.events = append(st.events, event{
		id: fmt.Sprintf("%s-%s-%d", logical, status, s.seq), logical: logical, physical: phys,
		typ: typ, status: status, reason: reason, at: s.now(),
	})
}

func (s *Server) setStatus(st *stack, status, reason string) {
	st.status, st.reason = status, reason
	s.emit(st, st.name, "", status, reason)
}

// ---- CloudFormation actions ----

func (s *Server) describeStacks(w http.ResponseWriter, f url.Values) {
	name := f.Get("StackName")
	var out []*stack
	if name == "" {
		for _, st := range s.stacks {
			if st.status != "DELETE_COMPLETE" {
				out = append(out, st)
			}
		}
	} else if st := s.live(name); st != nil {
		out = append(out, st)
	} else {
		writeErr(w, 400, cfnNS, "ValidationError", fmt.Sprintf("Stack with id %s does not exist", name))
		return
	}
	var b strings.Builder
	b.WriteString("<Stacks>")
	for _, st := range out {
		fmt.Fprintf(&b, "<member><StackId>%s</StackId><StackName>%s</StackName><CreationTime>%s</CreationTime><StackStatus>%s</StackStatus>",
			esc(st.id), esc(st.name), ts(st.created), st.status)
		if st.reason != "" {
			fmt.Fprintf(&b, "<StackStatusReason>%s</StackStatusReason>", esc(st.reason))
		}
		b.WriteString("<Capabilities>")
		for _, c := range st.capabilities {
			fmt.Fprintf(&b, "<member>%s</member>", c)
		}
		b.WriteString("</Capabilities><Parameters>")
		for _, k := range sortedKeys(st.params) {
			fmt.Fprintf(&b, "<member><ParameterKey>%s</ParameterKey><ParameterValue>%s</ParameterValue></member>", esc(k), esc(st.params[k]))
		}
		b.WriteString("</Parameters><Outputs>")
		for _, o := range st.outputs {
			fmt.Fprintf(&b, "<member><OutputKey>%s</OutputKey><OutputValue>%s</OutputValue><Description>%s</Description></member>", esc(o[0]), esc(o[1]), esc(o[2]))
		}
		b.WriteString("</Outputs></member>")
	}
	b.WriteString("</Stacks>")
	writeXML(w, cfnNS, "DescribeStacks", b.String())
}

func sortedKeys[V any](m map[string]V) []string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}

func (s *Server) createChangeSet(w http.ResponseWriter, f url.Values) {
	name, csName, typ := f.Get("StackName"), f.Get("ChangeSetName"), f.Get("ChangeSetType")
	if typ == "" {
		typ = "UPDATE"
	}
	if name == "" || csName == "" {
		writeErr(w, 400, cfnNS, "ValidationError", "StackName and ChangeSetName are required")
		return
	}
	body := []byte(f.Get("TemplateBody"))
	if u := f.Get("TemplateURL"); u != "" {
		obj, err := s.templateURL(u)
		if err != nil {
			writeErr(w, 400, cfnNS, "ValidationError", err.Error())
			return
		}
		body = obj
	} else if len(body) > MaxTemplateBody {
		writeErr(w, 400, cfnNS, "ValidationError", fmt.Sprintf("1 validation error detected: Value at 'templateBody' failed to satisfy constraint: Member must have length less than or equal to %d", MaxTemplateBody))
		return
	}
	tmpl, err := parseTemplate(body)
	if err != nil {
		writeErr(w, 400, cfnNS, "ValidationError", "Template format error: "+err.Error())
		return
	}
	caps := list(f, "Capabilities")
	if need := tmpl.capability(); need != "" && !slices.Contains(caps, need) && !slices.Contains(caps, "CAPABILITY_NAMED_IAM") {
		writeErr(w, 400, cfnNS, "InsufficientCapabilitiesException", fmt.Sprintf("Requires capabilities : [%s]", need))
		return
	}
	params := map[string]string{}
	for i := 1; ; i++ {
		k, ok := f[fmt.Sprintf("Parameters.member.%d.ParameterKey", i)]
		if !ok {
			break
		}
		params[k[0]] = f.Get(fmt.Sprintf("Parameters.member.%d.ParameterValue", i))
	}
	for k := range params {
		if _, ok := tmpl.params[k]; !ok {
			writeErr(w, 400, cfnNS, "ValidationError", fmt.Sprintf("Parameters: [%s] do not exist in the template", k))
			return
		}
	}
	for _, k := range sortedKeys(tmpl.params) {
		if _, ok := params[k]; !ok {
			if !tmpl.params[k].hasDefault {
				writeErr(w, 400, cfnNS, "ValidationError", fmt.Sprintf("Parameters: [%s] must have values", k))
				return
			}
			params[k] = tmpl.params[k].def
		}
	}
	st := s.live(name)
	switch typ {
	case "CREATE":
		if st != nil && st.status != "REVIEW_IN_PROGRESS" {
			writeErr(w, 400, cfnNS, "ValidationError", fmt.Sprintf("Stack [%s] already exists and cannot be created again with the changeSet [%s].", name, csName))
			return
		}
		if st == nil {
			s.seq++
			st = &stack{name: name, id: fmt.Sprintf("arn:aws:cloudformation:us-east-1:%s:stack/%s/standin-%d", Account, name, s.seq),
				created: s.now(), physical: map[string]string{}}
			s.stacks = append(s.stacks, st)
			s.setStatus(st, "REVIEW_IN_PROGRESS", "User Initiated")
		}
	case "UPDATE":
		if st == nil || st.status == "REVIEW_IN_PROGRESS" {
			writeErr(w, 400, cfnNS, "ValidationError", fmt.Sprintf("Stack [%s] does not exist", name))
			return
		}
	default:
		writeErr(w, 400, cfnNS, "ValidationError", "ChangeSetType must be CREATE or UPDATE in the stand-in, not "+typ)
		return
	}
	for _, cs := range st.changeSets {
		if cs.name == csName {
			writeErr(w, 400, cfnNS, "AlreadyExistsException", fmt.Sprintf("ChangeSet %s already exists", csName))
			return
		}
	}
	s.seq++
	cs := &changeSet{name: csName, typ: typ, status: "CREATE_PENDING", exec: "UNAVAILABLE", tmpl: tmpl, params: params, caps: caps,
		id: fmt.Sprintf("arn:aws:cloudformation:us-east-1:%s:changeSet/%s/standin-%d", Account, csName, s.seq)}
	cs.changes = diff(st.tmpl, st.params, tmpl, params)
	cs.other = st.tmpl != nil && (!reflect.DeepEqual(st.tmpl.outputs, tmpl.outputs) || !reflect.DeepEqual(st.params, params))
	st.changeSets = append(st.changeSets, cs)
	writeXML(w, cfnNS, "CreateChangeSet", fmt.Sprintf("<Id>%s</Id><StackId>%s</StackId>", esc(cs.id), esc(st.id)))
}

// templateURL resolves an S3 URL to an object the stand-in holds.
func (s *Server) templateURL(raw string) ([]byte, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("TemplateURL must be a supported URL: %v", err)
	}
	var bucket, key string
	path := strings.TrimPrefix(u.Path, "/")
	if host := u.Hostname(); strings.Contains(host, ".s3.") || strings.Contains(host, ".s3-") {
		bucket, key = host[:strings.Index(host, ".s3")], path
	} else {
		bucket, key, _ = strings.Cut(path, "/")
	}
	b, ok := s.objects[bucket+"/"+key]
	if !ok {
		return nil, fmt.Errorf("S3 error: Access Denied (no object %s/%s in the stand-in)", bucket, key)
	}
	return b, nil
}

func (s *Server) findChangeSet(f url.Values) (*stack, *changeSet) {
	name := f.Get("ChangeSetName")
	for _, st := range s.stacks {
		for _, cs := range st.changeSets {
			if cs.id == name || (cs.name == name && (st.name == f.Get("StackName") || st.id == f.Get("StackName")) && st.status != "DELETE_COMPLETE") {
				return st, cs
			}
		}
	}
	return nil, nil
}

func (s *Server) describeChangeSet(w http.ResponseWriter, f url.Values) {
	st, cs := s.findChangeSet(f)
	if cs == nil {
		writeErr(w, 404, cfnNS, "ChangeSetNotFound", fmt.Sprintf("ChangeSet [%s] does not exist", f.Get("ChangeSetName")))
		return
	}
	cs.describes++
	switch {
	case cs.status == "CREATE_PENDING":
		cs.status = "CREATE_IN_PROGRESS"
	case cs.status == "CREATE_IN_PROGRESS" && cs.describes >= 2:
		if len(cs.changes) == 0 && !cs.other {
			cs.status, cs.exec = "FAILED", "UNAVAILABLE"
			cs.reason = "The submitted information didn't contain changes. Submit different information to create a change set."
		} else {
			cs.status, cs.exec = "CREATE_COMPLETE", "AVAILABLE"
		}
	}
	// Page the changes two at a time, to exercise NextToken.
	start, _ := strconv.Atoi(f.Get("NextToken"))
	end := min(start+2, len(cs.changes))
	var b strings.Builder
	fmt.Fprintf(&b, "<ChangeSetId>%s</ChangeSetId><ChangeSetName>%s</ChangeSetName><StackId>%s</StackId><StackName>%s</StackName><Status>%s</Status><ExecutionStatus>%s</ExecutionStatus>",
		esc(cs.id), esc(cs.name), esc(st.id), esc(st.name), cs.status, cs.exec)
	if cs.reason != "" {
		fmt.Fprintf(&b, "<StatusReason>%s</StatusReason>", esc(cs.reason))
	}
	if cs.status == "CREATE_COMPLETE" {
		b.WriteString("<Changes>")
		for _, c := range cs.changes[start:end] {
			fmt.Fprintf(&b, "<member><Type>Resource</Type><ResourceChange><Action>%s</Action><LogicalResourceId>%s</LogicalResourceId><ResourceType>%s</ResourceType>", c.action, esc(c.logical), esc(c.typ))
			if p := st.physical[c.logical]; p != "" {
				fmt.Fprintf(&b, "<PhysicalResourceId>%s</PhysicalResourceId>", esc(p))
			}
			if c.replacement != "" {
				fmt.Fprintf(&b, "<Replacement>%s</Replacement>", c.replacement)
			}
			b.WriteString("</ResourceChange></member>")
		}
		b.WriteString("</Changes>")
		if end < len(cs.changes) {
			fmt.Fprintf(&b, "<NextToken>%d</NextToken>", end)
		}
	}
	writeXML(w, cfnNS, "DescribeChangeSet", b.String())
}

func (s *Server) deleteChangeSet(w http.ResponseWriter, f url.Values) {
	st, cs := s.findChangeSet(f)
	if cs == nil {
		writeErr(w, 404, cfnNS, "ChangeSetNotFound", fmt.Sprintf("ChangeSet [%s] does not exist", f.Get("ChangeSetName")))
		return
	}
	st.changeSets = slices.DeleteFunc(st.changeSets, func(c *changeSet) bool { return c == cs })
	writeXML(w, cfnNS, "DeleteChangeSet", "")
}

func (s *Server) executeChangeSet(w http.ResponseWriter, f url.Values) {
	st, cs := s.findChangeSet(f)
	if cs == nil {
		writeErr(w, 404, cfnNS, "ChangeSetNotFound", fmt.Sprintf("ChangeSet [%s] does not exist", f.Get("ChangeSetName")))
		return
	}
	if cs.exec != "AVAILABLE" {
		writeErr(w, 400, cfnNS, "InvalidChangeSetStatus", fmt.Sprintf("ChangeSet [%s] cannot be executed in its current status of [%s]", cs.id, cs.status))
		return
	}
	if len(st.pending) > 0 {
		writeErr(w, 400, cfnNS, "ValidationError", fmt.Sprintf("Stack:%s is in %s state and can not be updated.", st.id, st.status))
		return
	}
	// Executing a change set removes every change set of the stack.
	st.changeSets = nil
	st.capabilities = cs.caps
	if cs.typ == "CREATE" {
		s.planCreate(st, cs)
	} else {
		s.planUpdate(st, cs)
	}
	// The first step happens at once.
	s.stepNow(st)
	writeXML(w, cfnNS, "ExecuteChangeSet", "")
}

func (s *Server) stepNow(st *stack) {
	if len(st.pending) > 0 {
		step := st.pending[0]
		st.pending = st.pending[1:]
		step()
	}
}

func (s *Server) planCreate(st *stack, cs *changeSet) {
	add := func(f func()) { st.pending = append(st.pending, f) }
	newT := cs.tmpl
	add(func() { s.setStatus(st, "CREATE_IN_PROGRESS", "User Initiated") })
	var created []string
	for i, id := range newT.order {
		r := newT.resources[id]
		if reason, fail := s.Fail[id]; fail {
			// The failing resource starts together with the next one; it
			// fails, the other is cancelled, and the stack rolls back.
			var other string
			if i+1 < len(newT.order) {
				other = newT.order[i+1]
			}
			add(func() {
				s.emit(st, id, r.typ, "CREATE_IN_PROGRESS", "")
				if other != "" {
					s.emit(st, other, newT.resources[other].typ, "CREATE_IN_PROGRESS", "")
				}
			})
			add(func() {
				s.emit(st, id, r.typ, "CREATE_FAILED", reason)
				if other != "" {
					s.emit(st, other, newT.resources[other].typ, "CREATE_FAILED", "Resource creation cancelled")
				}
			})
			add(func() {
				s.setStatus(st, "ROLLBACK_IN_PROGRESS", fmt.Sprintf("The following resource(s) failed to create: [%s]. Rollback requested by user.", id))
			})
			for j := len(created) - 1; j >= 0; j-- {
				c := created[j]
				add(func() { s.emit(st, c, newT.resources[c].typ, "DELETE_IN_PROGRESS", "") })
				add(func() {
					s.emit(st, c, newT.resources[c].typ, "DELETE_COMPLETE", "")
					delete(st.physical, c)
				})
			}
			add(func() {
				st.tmpl, st.params = newT, cs.params
				s.setStatus(st, "ROLLBACK_COMPLETE", "")
			})
			return
		}
		add(func() { s.emit(st, id, r.typ, "CREATE_IN_PROGRESS", "") })
		add(func() {
			s.seq++
			st.physical[id] = fmt.Sprintf("%s-standin-%d", strings.ToLower(id), s.seq)
			s.emit(st, id, r.typ, "CREATE_IN_PROGRESS", "Resource creation Initiated")
			s.emit(st, id, r.typ, "CREATE_COMPLETE", "")
		})
		created = append(created, id)
	}
	add(func() {
		st.tmpl, st.params = newT, cs.params
		st.outputs = s.resolveOutputs(st)
		s.setStatus(st, "CREATE_COMPLETE", "")
	})
}

func (s *Server) planUpdate(st *stack, cs *changeSet) {
	add := func(f func()) { st.pending = append(st.pending, f) }
	oldT, oldParams, newT := st.tmpl, st.params, cs.tmpl
	add(func() { s.setStatus(st, "UPDATE_IN_PROGRESS", "User Initiated") })
	var done []change
	rollback := func(failed string) {
		add(func() {
			s.setStatus(st, "UPDATE_ROLLBACK_IN_PROGRESS", fmt.Sprintf("The following resource(s) failed to update: [%s].", failed))
		})
		for j := len(done) - 1; j >= 0; j-- {
			c := done[j]
			switch c.action {
			case "Modify":
				add(func() { s.emit(st, c.logical, c.typ, "UPDATE_IN_PROGRESS", "") })
				add(func() { s.emit(st, c.logical, c.typ, "UPDATE_COMPLETE", "") })
			}
		}
		add(func() { s.setStatus(st, "UPDATE_ROLLBACK_COMPLETE_CLEANUP_IN_PROGRESS", "") })
		for j := len(done) - 1; j >= 0; j-- {
			c := done[j]
			if c.action == "Add" {
				add(func() { s.emit(st, c.logical, c.typ, "DELETE_IN_PROGRESS", "") })
				add(func() { s.emit(st, c.logical, c.typ, "DELETE_COMPLETE", ""); delete(st.physical, c.logical) })
			}
		}
		add(func() {
			st.tmpl, st.params = oldT, oldParams
			s.setStatus(st, "UPDATE_ROLLBACK_COMPLETE", "")
		})
	}
	for _, c := range cs.changes {
		if c.action == "Remove" {
			continue
		}
		verb := "UPDATE"
		if c.action == "Add" {
			verb = "CREATE"
		}
		add(func() { s.emit(st, c.logical, c.typ, verb+"_IN_PROGRESS", "") })
		if reason, fail := s.Fail[c.logical]; fail {
			add(func() { s.emit(st, c.logical, c.typ, verb+"_FAILED", reason) })
			rollback(c.logical)
			return
		}
		add(func() {
			if c.action == "Add" {
				s.seq++
				st.physical[c.logical] = fmt.Sprintf("%s-standin-%d", strings.ToLower(c.logical), s.seq)
			}
			s.emit(st, c.logical, c.typ, verb+"_COMPLETE", "")
		})
		done = append(done, c)
	}
	add(func() {
		st.tmpl, st.params = newT, cs.params
		st.outputs = s.resolveOutputs(st)
		s.setStatus(st, "UPDATE_COMPLETE_CLEANUP_IN_PROGRESS", "")
	})
	for _, c := range cs.changes {
		if c.action != "Remove" {
			continue
		}
		add(func() { s.emit(st, c.logical, c.typ, "DELETE_IN_PROGRESS", "") })
		add(func() { s.emit(st, c.logical, c.typ, "DELETE_COMPLETE", ""); delete(st.physical, c.logical) })
	}
	add(func() { s.setStatus(st, "UPDATE_COMPLETE", "") })
}

func (s *Server) deleteStack(w http.ResponseWriter, f url.Values) {
	st := s.live(f.Get("StackName"))
	// Deleting a stack that does not exist succeeds, as on AWS.
	if st != nil && st.status != "DELETE_COMPLETE" && st.status != "DELETE_IN_PROGRESS" {
		if len(st.pending) > 0 {
			writeErr(w, 400, cfnNS, "ValidationError", fmt.Sprintf("Stack [%s] cannot be deleted while in status %s", st.name, st.status))
			return
		}
		add := func(f func()) { st.pending = append(st.pending, f) }
		add(func() { s.setStatus(st, "DELETE_IN_PROGRESS", "User Initiated") })
		var order []string
		if st.tmpl != nil {
			order = st.tmpl.order
		}
		for j := len(order) - 1; j >= 0; j-- {
			id := order[j]
			if _, ok := st.physical[id]; !ok {
				continue
			}
			typ := st.tmpl.resources[id].typ
			add(func() { s.emit(st, id, typ, "DELETE_IN_PROGRESS", "") })
			add(func() { s.emit(st, id, typ, "DELETE_COMPLETE", ""); delete(st.physical, id) })
		}
		add(func() {
			st.outputs = nil
			s.setStatus(st, "DELETE_COMPLETE", "")
		})
		s.stepNow(st)
		if len(st.physical) == 0 {
			// Nothing to delete (a stack still in review): done at once.
			for len(st.pending) > 0 {
				s.stepNow(st)
			}
		}
	}
	writeXML(w, cfnNS, "DeleteStack", "")
}

func (s *Server) describeStackEvents(w http.ResponseWriter, f url.Values) {
	st := s.live(f.Get("StackName"))
	if st == nil {
		writeErr(w, 400, cfnNS, "ValidationError", fmt.Sprintf("Stack [%s] does not exist", f.Get("StackName")))
		return
	}
	start, _ := strconv.Atoi(f.Get("NextToken"))
	var b strings.Builder
	b.WriteString("<StackEvents>")
	n := 0
	i := len(st.events) - 1 - start
	for ; i >= 0 && n < s.PageSize; i, n = i-1, n+1 {
		e := st.events[i]
		fmt.Fprintf(&b, "<member><EventId>%s</EventId><StackId>%s</StackId><StackName>%s</StackName><LogicalResourceId>%s</LogicalResourceId><PhysicalResourceId>%s</PhysicalResourceId><ResourceType>%s</ResourceType><Timestamp>%s</Timestamp><ResourceStatus>%s</ResourceStatus>",
			esc(e.id), esc(st.id), esc(st.name), esc(e.logical), esc(e.physical), esc(e.typ), ts(e.at), e.status)
		if e.reason != "" {
			fmt.Fprintf(&b, "<ResourceStatusReason>%s</ResourceStatusReason>", esc(e.reason))
		}
		b.WriteString("</member>")
	}
	b.WriteString("</StackEvents>")
	if i >= 0 {
		fmt.Fprintf(&b, "<NextToken>%d</NextToken>", start+n)
	}
	writeXML(w, cfnNS, "DescribeStackEvents", b.String())
}

// ---- templates ----

func parseTemplate(body []byte) (*template, error) {
	var root yaml.Node
	if err := yaml.Unmarshal(body, &root); err != nil {
		return nil, err
	}
	if len(root.Content) == 0 || root.Content[0].Kind != yaml.MappingNode {
		return nil, fmt.Errorf("template is not an object")
	}
	t := &template{body: body, resources: map[string]resource{}, params: map[string]param{}}
	top := root.Content[0]
	for i := 0; i+1 < len(top.Content); i += 2 {
		key, val := top.Content[i].Value, top.Content[i+1]
		switch key {
		case "Resources":
			for j := 0; j+1 < len(val.Content); j += 2 {
				id := val.Content[j].Value
				var r struct {
					Type       string         `yaml:"Type"`
					Properties map[string]any `yaml:"Properties"`
				}
				if err := val.Content[j+1].Decode(&r); err != nil {
					return nil, fmt.Errorf("resource %s: %v", id, err)
				}
				if r.Type == "" {
					return nil, fmt.Errorf("[/Resources/%s] Every Resources object must contain a Type member.", id)
				}
				t.order = append(t.order, id)
				t.resources[id] = resource{typ: r.Type, props: r.Properties}
			}
		case "Parameters":
			for j := 0; j+1 < len(val.Content); j += 2 {
				var p struct {
					Default *string `yaml:"Default"`
				}
				if err := val.Content[j+1].Decode(&p); err != nil {
					return nil, fmt.Errorf("parameter %s: %v", val.Content[j].Value, err)
				}
				pp := param{hasDefault: p.Default != nil}
				if p.Default != nil {
					pp.def = *p.Default
				}
				t.params[val.Content[j].Value] = pp
			}
		case "Outputs":
			for j := 0; j+1 < len(val.Content); j += 2 {
				var o struct {
					Description string `yaml:"Description"`
					Value       any    `yaml:"Value"`
				}
				if err := val.Content[j+1].Decode(&o); err != nil {
					return nil, fmt.Errorf("output %s: %v", val.Content[j].Value, err)
				}
				t.outputs = append(t.outputs, outputDef{name: val.Content[j].Value, desc: o.Description, value: o.Value})
			}
		}
	}
	if len(t.order) == 0 {
		return nil, fmt.Errorf("At least one Resources member must be defined.")
	}
	return t, nil
}

// capability returns the capability the template needs, if any.
func (t *template) capability() string {
	need := ""
	for _, r := range t.resources {
		if !strings.HasPrefix(r.typ, "AWS::IAM::") {
			continue
		}
		need = "CAPABILITY_IAM"
		for _, n := range []string{"RoleName", "InstanceProfileName", "UserName", "GroupName", "ManagedPolicyName"} {
			if _, ok := r.props[n]; ok {
				return "CAPABILITY_NAMED_IAM"
			}
		}
	}
	return need
}

// resolveParams replaces {"Ref": parameter} with the parameter's value.
func resolveParams(v any, params map[string]string) any {
	switch x := v.(type) {
	case map[string]any:
		if ref, ok := x["Ref"].(string); ok && len(x) == 1 {
			if p, ok := params[ref]; ok {
				return p
			}
		}
		out := map[string]any{}
		for k, vv := range x {
			out[k] = resolveParams(vv, params)
		}
		return out
	case []any:
		out := make([]any, len(x))
		for i, vv := range x {
			out[i] = resolveParams(vv, params)
		}
		return out
	}
	return v
}

// diff compares the deployed template with a new one, as a change set does.
func diff(oldT *template, oldParams map[string]string, newT *template, newParams map[string]string) []change {
	var out []change
	for _, id := range newT.order {
		nr := newT.resources[id]
		if oldT == nil {
			out = append(out, change{"Add", id, nr.typ, ""})
			continue
		}
		or, ok := oldT.resources[id]
		switch {
		case !ok:
			out = append(out, change{"Add", id, nr.typ, ""})
		case or.typ != nr.typ:
			out = append(out, change{"Modify", id, nr.typ, "True"})
		case !reflect.DeepEqual(resolveParams(or.props, oldParams), resolveParams(nr.props, newParams)):
			out = append(out, change{"Modify", id, nr.typ, "False"})
		}
	}
	if oldT != nil {
		for _, id := range oldT.order {
			if _, ok := newT.resources[id]; !ok {
				out = append(out, change{"Remove", id, oldT.resources[id].typ, ""})
			}
		}
	}
	return out
}

func (s *Server) resolveOutputs(st *stack) [][3]string {
	var out [][3]string
	for _, o := range st.tmpl.outputs {
		out = append(out, [3]string{o.name, s.eval(st, o.value), o.desc})
	}
	return out
}

var subRE = regexp.MustCompile(`\$\{([^}]+)\}`)

// eval gives an output value a made-up but recognisable string.
func (s *Server) eval(st *stack, v any) string {
	switch x := v.(type) {
	case string:
		return x
	case map[string]any:
		if ref, ok := x["Ref"].(string); ok {
			return s.ref(st, ref)
		}
		if ga, ok := x["Fn::GetAtt"]; ok {
			parts := getAttParts(ga)
			return s.getAtt(st, parts[0], parts[1])
		}
		if sub, ok := x["Fn::Sub"]; ok {
			var str string
			vars := map[string]any{}
			switch y := sub.(type) {
			case string:
				str = y
			case []any:
				str, _ = y[0].(string)
				if len(y) > 1 {
					vars, _ = y[1].(map[string]any)
				}
			}
			return subRE.ReplaceAllStringFunc(str, func(m string) string {
				name := m[2 : len(m)-1]
				if v, ok := vars[name]; ok {
					return s.eval(st, v)
				}
				if a, b, ok := strings.Cut(name, "."); ok {
					return s.getAtt(st, a, b)
				}
				return s.ref(st, name)
			})
		}
		if j, ok := x["Fn::Join"].([]any); ok && len(j) == 2 {
			sep, _ := j[0].(string)
			items, _ := j[1].([]any)
			var parts []string
			for _, it := range items {
				parts = append(parts, s.eval(st, it))
			}
			return strings.Join(parts, sep)
		}
	}
	b, _ := json.Marshal(v)
	return string(b)
}

func getAttParts(v any) [2]string {
	switch y := v.(type) {
	case string:
		a, b, _ := strings.Cut(y, ".")
		return [2]string{a, b}
	case []any:
		if len(y) == 2 {
			a, _ := y[0].(string)
			b, _ := y[1].(string)
			return [2]string{a, b}
		}
	}
	return [2]string{"?", "?"}
}

func (s *Server) ref(st *stack, name string) string {
	switch name {
	case "AWS::Region":
		return "us-east-1"
	case "AWS::AccountId":
		return Account
	case "AWS::StackName":
		return st.name
	}
	if p, ok := st.params[name]; ok {
		return p
	}
	if p, ok := st.physical[name]; ok {
		return p
	}
	return name
}

func (s *Server) getAtt(st *stack, id, attr string) string {
	if attr == "PublicIp" {
		return "192.0.2.10" // TEST-NET-1: documentation addresses, never routed
	}
	return strings.ToLower(id+"."+attr) + ".standin.invalid"
}

// ---- S3 (path-style) ----

func (s *Server) s3(w http.ResponseWriter, r *http.Request) {
	path := strings.TrimPrefix(r.URL.Path, "/")
	bucket, key, _ := strings.Cut(path, "/")
	const ns = "http://s3.amazonaws.com/doc/2006-03-01/"
	s3err := func(status int, code, msg string) {
		w.Header().Set("Content-Type", "application/xml")
		w.WriteHeader(status)
		if r.Method != http.MethodHead {
			fmt.Fprintf(w, `<?xml version="1.0" encoding="UTF-8"?><Error><Code>%s</Code><Message>%s</Message><BucketName>%s</BucketName></Error>`, code, esc(msg), esc(bucket))
		}
	}
	switch {
	case r.Method == http.MethodHead && key == "":
		s.calls = append(s.calls, "s3:HeadBucket")
		if !s.buckets[bucket] {
			s3err(404, "NotFound", "Not Found")
			return
		}
		w.WriteHeader(200)
	case r.Method == http.MethodPut && key == "":
		s.calls = append(s.calls, "s3:CreateBucket")
		if s.buckets[bucket] {
			s3err(409, "BucketAlreadyOwnedByYou", "Your previous request to create the named bucket succeeded and you already own it.")
			return
		}
		s.buckets[bucket] = true
		w.Header().Set("Location", "/"+bucket)
		w.WriteHeader(200)
	case r.Method == http.MethodPut:
		if r.URL.Query().Has("x-id") && r.URL.Query().Get("x-id") != "PutObject" {
			s3err(400, "NotImplemented", "the stand-in only implements PutObject")
			return
		}
		s.calls = append(s.calls, "s3:PutObject")
		if !s.buckets[bucket] {
			s3err(404, "NoSuchBucket", "The specified bucket does not exist")
			return
		}
		body, err := io.ReadAll(r.Body)
		if err != nil {
			s3err(400, "IncompleteBody", err.Error())
			return
		}
		if strings.Contains(r.Header.Get("Content-Encoding"), "aws-chunked") {
			if body, err = unchunk(body); err != nil {
				s3err(400, "InvalidRequest", err.Error())
				return
			}
		}
		s.objects[bucket+"/"+key] = body
		w.Header().Set("ETag", `"standin"`)
		w.WriteHeader(200)
	default:
		_ = ns
		s3err(405, "MethodNotAllowed", fmt.Sprintf("the stand-in does not implement %s %s", r.Method, r.URL.Path))
	}
}

// unchunk decodes an aws-chunked body (size;chunk-signature=...\r\ndata\r\n ... 0\r\ntrailers).
func unchunk(b []byte) ([]byte, error) {
	var out []byte
	for {
		line, rest, ok := bytes.Cut(b, []byte("\r\n"))
		if !ok {
			return nil, fmt.Errorf("aws-chunked: no chunk header")
		}
		sizeHex, _, _ := strings.Cut(string(line), ";")
		n, err := strconv.ParseInt(sizeHex, 16, 64)
		if err != nil {
			return nil, fmt.Errorf("aws-chunked: bad size %q", sizeHex)
		}
		if n == 0 {
			return out, nil
		}
		if int64(len(rest)) < n+2 {
			return nil, fmt.Errorf("aws-chunked: short chunk")
		}
		out = append(out, rest[:n]...)
		b = rest[n+2:]
	}
}
