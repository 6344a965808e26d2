package server

import (
	"slices"
	"strings"

	erasurev1 "github.com/erasured/erasured/gen/erasure/v1"
)

// Role is a permission granted to a caller. Each RPC names the role it needs in methodRoles.
type Role string

// The roles. A caller may hold several.
const (
	// RoleSubmitter submits and cancels erasures and previews plans (a preview looks up
	// personal data, so it is not a viewer's).
	RoleSubmitter Role = "submitter"
	// RoleApprover confirms or rejects the plan of an erasure awaiting confirmation.
	RoleApprover Role = "approver"
	// RoleViewer reads erasures: Status, List, Watch and Resolve without a decision.
	RoleViewer Role = "viewer"
	// RoleOperator settles a batch whose LivePerson outcome is known out of band, and takes
	// backups of the store.
	RoleOperator Role = "operator"
	// RoleAuditor reads the audit trail.
	RoleAuditor Role = "auditor"
	// RoleMetrics scrapes the metrics listener (checked there, not by any RPC).
	RoleMetrics Role = "metrics"
)

// allRoles are the known roles; the anonymous caller of the auth-less sandbox holds every one.
var allRoles = []Role{RoleSubmitter, RoleApprover, RoleViewer, RoleOperator, RoleAuditor, RoleMetrics}

// Roles returns the known roles, for configuration checks.
func Roles() []Role { return slices.Clone(allRoles) }

func knownRole(r Role) bool {
	for _, k := range allRoles {
		if r == k {
			return true
		}
	}
	return false
}

// access is what a method asks of its caller.
type access struct {
	// open methods need no credentials at all (health).
	open bool
	// roles are needed all together; an empty list with open false means any authenticated caller.
	roles []Role
	// byRequest marks a method whose role depends on its request (Resolve): it is authorized
	// after the request is decoded, by requestRoles.
	byRequest bool
}

// methodRoles is the one table of who may call what, by full method name. A method missing
// from it is refused to everyone, so a new RPC is closed until it is added here.
var methodRoles = map[string]access{
	erasurev1.ErasureService_Submit_FullMethodName:           {roles: []Role{RoleSubmitter}},
	erasurev1.ErasureService_Cancel_FullMethodName:           {roles: []Role{RoleSubmitter}},
	erasurev1.ErasureService_Resolve_FullMethodName:          {byRequest: true},
	erasurev1.ErasureService_Status_FullMethodName:           {roles: []Role{RoleViewer}},
	erasurev1.ErasureService_List_FullMethodName:             {roles: []Role{RoleViewer}},
	erasurev1.ErasureService_Watch_FullMethodName:            {roles: []Role{RoleViewer}},
	erasurev1.ErasureService_SettleBatch_FullMethodName:      {roles: []Role{RoleOperator}},
	erasurev1.ErasureService_ListAuditRecords_FullMethodName: {roles: []Role{RoleAuditor}},
	erasurev1.ErasureService_Backup_FullMethodName:           {roles: []Role{RoleOperator}},
	erasurev1.ErasureService_GetReceiptKeys_FullMethodName:   {roles: []Role{RoleViewer}},

	"/grpc.health.v1.Health/Check": {open: true},
	"/grpc.health.v1.Health/List":  {open: true},
	"/grpc.health.v1.Health/Watch": {open: true},

	// Reflection describes the API only: any authenticated caller.
	"/grpc.reflection.v1.ServerReflection/ServerReflectionInfo":      {},
	"/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo": {},
}

// isHealth reports whether method belongs to the health service, which is open (see limit for
// how its streams are capped).
func isHealth(method string) bool { return strings.HasPrefix(method, "/grpc.health.v1.Health/") }

// requestRoles are the roles a request of a byRequest method needs: a Resolve decision needs
// an approver, a preview a submitter, a plain read of the plan a viewer.
func requestRoles(req any) []Role {
	r, ok := req.(*erasurev1.ResolveRequest)
	if !ok {
		return nil
	}
	var roles []Role
	if r.GetPreview() != nil {
		roles = append(roles, RoleSubmitter)
	}
	if r.GetDecision() != nil {
		roles = append(roles, RoleApprover)
	}
	if len(roles) == 0 {
		roles = []Role{RoleViewer}
	}
	return roles
}

// authorizeRoles checks that c holds every role in need; the error names the first role missing.
func authorizeRoles(c *caller, method string, need []Role) error {
	for _, r := range need {
		if !c.has(r) {
			return permissionDenied(method, r)
		}
	}
	return nil
}
