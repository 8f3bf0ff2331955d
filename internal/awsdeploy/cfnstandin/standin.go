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
//     Resources against the stack's (Add, Modify, Remove; a changed Type or
//     a changed create-only property, as AWS's provider schemas list them,
//     is a replacement); when neither resources, outputs nor parameters
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
//   - A replacement makes a new physical resource and deletes the old one
//     in the cleanup; the replacement of a custom-named resource (its name
//     property, e.g. a key pair's KeyName, unchanged) fails as on AWS:
//     "CloudFormation cannot update a stack when a custom-named resource
//     requires replacing", and the update rolls back.
//   - DeleteStack plays DELETE events in reverse order; a deleted stack is
//     still described by its id, as on AWS.
//   - Outputs are resolved with made-up values (Ref -> a physical id,
//     Fn::GetAtt -> "<id>.<attr>.standin.invalid", Fn::Sub, Fn::Join).
//
// It answers ListStackResources, and EC2's DescribeAvailabilityZones with
// the zones in Zones, so that moat deploy's checks run against it too.
//
// Keep it for what moto (the emulator the other tests run against) cannot
// show: resource failures, rollbacks, refused replacements, per-resource
// events, paging.
//
// Requests must carry a SigV4 Authorization header (the stand-in does not
// check the signature, only that the client signed with some credentials);
// the access key ids seen are recorded.
package cfnstandin

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"slices"
	"sort"
	"sync"
	"time"
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
	def, desc  string
}

type outputDef struct {
	name, desc string
	value      any
}
