package policy

import (
	"errors"
	"fmt"
	"sync"

	"cel.dev/cel-go/cel"
	"cel.dev/cel-go/common/types"
)

// CELCostLimit bounds one rule evaluation in CEL's abstract cost units (about
// one per operation). It allows a rule to visit every pair of 100 names
// (about 50,000), but a runaway rule stops within milliseconds.
const CELCostLimit = 100_000

// celEnv is built once: declaring the environment is the slow part of CEL,
// and an Env is safe for concurrent Compile calls.
var celEnv = sync.OnceValues(func() (*cel.Env, error) {
	m := cel.MapType(cel.StringType, cel.DynType)
	return cel.NewEnv(
		cel.Variable("request", m),
		cel.Variable("requester", m),
		cel.ParserExpressionSizeLimit(MaxRuleLength),
	)
})

type celRule struct {
	src string
	prg cel.Program // safe for concurrent Eval
}

func compileRule(src string) (*celRule, error) {
	if len(src) > MaxRuleLength {
		return nil, fmt.Errorf("longer than %d bytes", MaxRuleLength)
	}
	env, err := celEnv()
	if err != nil {
		return nil, fmt.Errorf("CEL environment: %w", err)
	}
	ast, iss := env.Compile(src)
	if iss != nil && iss.Err() != nil {
		return nil, fmt.Errorf("does not compile: %w", iss.Err())
	}
	if t := ast.OutputType(); !t.IsExactType(cel.BoolType) {
		return nil, fmt.Errorf("must evaluate to bool, not %s", t)
	}
	prg, err := env.Program(ast, cel.CostLimit(CELCostLimit), cel.EvalOptions(cel.OptOptimize))
	if err != nil {
		return nil, fmt.Errorf("does not compile: %w", err)
	}
	return &celRule{src: src, prg: prg}, nil
}

// eval runs the rule; a nil error means it returned true.
func (r *celRule) eval(request, requester map[string]any) error {
	out, _, err := r.prg.Eval(map[string]any{"request": request, "requester": requester})
	if err != nil {
		return fmt.Errorf("rule %s failed to evaluate: %v", quote(r.src), err)
	}
	if b, ok := out.(types.Bool); !ok || !bool(b) {
		return errors.New("rule " + quote(r.src) + " is not satisfied")
	}
	return nil
}

func quote(s string) string { return fmt.Sprintf("%q", truncate(s, 200)) }
