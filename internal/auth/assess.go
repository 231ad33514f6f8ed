package auth

// Actions of assessment and monitoring (issue 7). Admins may do all; the
// grants table gives FindingsRead and NotifyRead to auditors, FindingsRead
// to operators.
const (
	FindingsRead Action = "findings.read"
	NotifyRead   Action = "notify.read"
	NotifyWrite  Action = "notify.write"
)
