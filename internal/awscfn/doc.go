// Package awscfn renders a resolved plan (package plan) as an AWS
// CloudFormation template and validates templates offline.
//
// # Rendering
//
// Render turns the plan into a Template: the VPC, subnets, internet and
// NAT gateways, route tables, network ACLs (one entry resource per rule,
// and the subnets' associations), security groups (group-to-group rules as
// separate ingress and egress resources, so groups that reference each
// other form no cycle), key pairs, the bastion, launch templates, target
// groups, load balancers with listeners and rules, auto scaling groups and
// their scaling policies, and outputs (load balancer URLs, the bastion's
// address, an SSH command that works with OpenSSH). Logical ids come from
// the names in the stack file, so they stay stable across edits, and the
// output is deterministic. It consumes only the plan, never the stack file,
// so the template and the local runtime cannot drift: the parity test
// (parity_test.go) extracts the same topology from both and compares them
// node for node.
//
// What the template must get right beyond its schema, and where:
//   - image.go: one plain AMI id parameter per CPU architecture the
//     instance types use (ImageParameters), which moat deploy resolves once
//     from SSM and keeps, instead of an SSM-typed parameter that would
//     re-resolve on every deploy;
//   - render.go: key pair names that change with the key (every key pair
//     property is create-only), the rolling update and creation policies
//     that wait for healthy instances;
//   - userdata.go: the launch templates' boot script (the app's files
//     inline or from S3, its user data, a systemd unit, and the readiness
//     script that signals CloudFormation once the app passes its health
//     check), the bastion's every-boot script, and Bundle, the
//     deterministic archive of an app's files;
//   - encode.go: JSON and YAML output in a fixed order, and ParseJSON.
//
// # Validation
//
// Validate checks a template offline, without AWS: each resource against
// AWS's own resource provider schemas, vendored under schemas/
// (schema.go; createonly.go reads which properties force a replacement,
// for the deploy stand-in), then moat's rules, one family per file:
// references and dependency cycles (validate_refs.go); the network —
// subnets inside their VPC and apart, zones with public and private
// subnets, load balancers across two zones in public subnets of /27 or
// larger (validate_network.go); security groups — EC2's characters in
// rule descriptions, instances that admit the load balancers forwarding to
// them (validate_security.go); each instance's image of its type's
// architecture (validate_images.go); request-count scaling policies that
// name a connected load balancer and target group (validate_scaling.go).
// A Finding names the logical id and property path and says what is wrong.
//
// What only the account knows (its zones, its certificates) is checked by
// moat deploy (package awsdeploy) before it creates a change set; the
// stack file's own problems, with file:line:column, by package spec.
package awscfn
