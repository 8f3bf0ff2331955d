// Package awsdeploy deploys a rendered CloudFormation template the way AWS
// Copilot did: create or update the stack through a change set, show the
// change set and ask, execute it, stream the stack events as a live
// progress view, wait for a terminal status, and report the outcome — the
// outputs on success, the first failing resource and its reason on failure,
// and whether CloudFormation rolled back. It also deletes stacks (destroy),
// reads their outputs, and ships application bundles ("assets") to S3.
//
// The decisions are pure and table-tested: create or update from the
// stack's status (StackAction), which change set failures mean "no
// changes" (NoChanges), which event is the cause of a failure
// (FirstFailure), what the progress view shows (Progress). The effects are
// the few CloudFormation, S3, STS, EC2, ACM, SSM, ELBv2 and Auto Scaling
// calls behind the small interfaces in api.go, implemented by the
// aws-sdk-go-v2 clients (Connect). Before a change set it checks what only
// the account knows (preflight.go: zones, certificates; the image resolved
// once); after one, what it deployed (verify.go: healthy targets, one
// request, the instances to SSH to). Tests drive the real SDK clients
// against moto (cmd/moat/moto_test.go) and against a local stand-in for
// failures and rollbacks (package cfnstandin), never against AWS.
package awsdeploy
