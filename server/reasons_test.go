package server

import (
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"unicode"

	"google.golang.org/grpc/codes"

	"github.com/erasured/erasured/service"
)

// The ErrorInfo reasons the server can return are found in the Go sources of server/ and
// service/ (not listed by hand), where they are written:
//
//   - the Reason of a service.Error literal, its code that of the Error's Kind (through codeOf);
//   - the Reason of an errdetails.ErrorInfo literal, its code that of the status.New(codes.X, …)
//     of the same function;
//   - the reason argument of statusError (its code the first argument), of newError (its code
//     that of the kind, the first argument), and of newGate (a gate's reason, sent with the code
//     of the statusError call that forwards it).
//
// A reason written any other way than as a string literal makes the test fail, unless the
// expression only forwards a reason written as above (passThrough).

// reasonSource is where a reason is written and the gRPC code it goes with.
type reasonSource struct {
	reason    string
	code      codes.Code
	forwarder string // when set, code is that of where this function sends its reason
	at        string // file:line
}

// passThrough are the non-literal reason expressions that forward a reason written elsewhere;
// the value names the function whose reason argument they forward, when the code they are sent
// with is that function's reasons' code.
var passThrough = map[string]string{
	"reason":    "",        // the parameter of statusError and newError: their callers are read
	"se.Reason": "",        // toStatus: the Reason of a service.Error, read where it is built
	"g.reason":  "newGate", // a gate's reason: the argument of newGate
}

// reasonArgs are the functions with a reason argument: its index, and the index of the
// argument that gives the code (codes.X, or a service kind), -1 when the code is that of where
// the function sends the reason.
var reasonArgs = map[string]struct{ reason, code int }{
	"statusError": {2, 0},
	"newError":    {1, 0},
	"newGate":     {1, -1},
}

// TestEveryReasonDocumented fails when a reason the server can return is not listed, with the
// code it goes with, in the top comment of ErasureService, or when the comment lists a reason
// that nothing returns any more.
func TestEveryReasonDocumented(t *testing.T) {
	c := &collector{t: t, kinds: errorKinds(t, filepath.Join("..", "service", "errors.go")), forwarded: map[string]codes.Code{}}
	for _, dir := range []string{".", filepath.Join("..", "service")} {
		err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
				return err
			}
			c.fset = token.NewFileSet()
			f, err := parser.ParseFile(c.fset, path, nil, 0)
			if err != nil {
				return err
			}
			for _, d := range f.Decls { // a function's body, or a declaration of variables
				c.decl(d)
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	if len(c.found) < 30 {
		t.Fatalf("found only %d reasons in the sources: the collector is broken", len(c.found))
	}

	documented := documentedReasons(t, filepath.Join("..", "proto", "erasure", "v1", "service.proto"))
	returned := map[string]bool{}
	for _, r := range c.found {
		if r.forwarder != "" {
			code, ok := c.forwarded[r.forwarder]
			if !ok {
				t.Errorf("%s: reason %s is given to %s, which was not found sending it", r.at, r.reason, r.forwarder)
				continue
			}
			r.code = code
		}
		returned[r.reason] = true
		want, ok := documented[r.reason]
		switch {
		case !ok:
			t.Errorf("%s: reason %s (%s) is not in the ErasureService comment of service.proto", r.at, r.reason, codeName(r.code))
		case !slices.Contains(want, r.code):
			t.Errorf("%s: reason %s goes with %s; service.proto says %v", r.at, r.reason, codeName(r.code), names(want))
		}
	}
	for reason := range documented {
		if !returned[reason] {
			t.Errorf("service.proto documents reason %s, which nothing in server/ or service/ returns", reason)
		}
	}
}

// collector gathers the reasons of the declarations it is shown.
type collector struct {
	t         *testing.T
	fset      *token.FileSet
	kinds     map[string]service.ErrorKind
	found     []reasonSource
	forwarded map[string]codes.Code // forwarder → the code its reason is sent with
}

// decl collects the reasons written in one top-level declaration.
func (c *collector) decl(body ast.Decl) {
	statusCode := codes.Unknown // of the function's status.New(codes.X, …), if it has one
	ast.Inspect(body, func(n ast.Node) bool {
		if call, ok := n.(*ast.CallExpr); ok && exprString(call.Fun) == "status.New" && len(call.Args) > 0 {
			if name := exprString(call.Args[0]); strings.HasPrefix(name, "codes.") {
				statusCode = grpcCode(c.t, name)
			}
		}
		return true
	})
	ast.Inspect(body, func(n ast.Node) bool {
		switch n := n.(type) {
		case *ast.CompositeLit:
			typ := exprString(n.Type)
			if typ != "Error" && typ != "service.Error" && typ != "errdetails.ErrorInfo" {
				return true
			}
			var reason, kind ast.Expr
			for _, el := range n.Elts {
				if kv, ok := el.(*ast.KeyValueExpr); ok {
					switch exprString(kv.Key) {
					case "Reason":
						reason = kv.Value
					case "Kind":
						kind = kv.Value
					}
				}
			}
			if reason == nil {
				c.t.Errorf("%s: a %s without a Reason", c.pos(n), typ)
				return true
			}
			code := statusCode
			if typ != "errdetails.ErrorInfo" {
				code = c.kindCode(kind)
			}
			c.add(reason, code, "")
		case *ast.CallExpr:
			fn := exprString(n.Fun)
			args, ok := reasonArgs[fn]
			if !ok || len(n.Args) <= args.reason {
				return true
			}
			switch {
			case args.code < 0:
				c.add(n.Args[args.reason], codes.Unknown, fn)
			case fn == "statusError":
				c.add(n.Args[args.reason], grpcCode(c.t, exprString(n.Args[args.code])), "")
			default:
				c.add(n.Args[args.reason], c.kindCode(n.Args[args.code]), "")
			}
		}
		return true
	})
}

// add records the reason expression e, sent with code, or given to forwarder.
func (c *collector) add(e ast.Expr, code codes.Code, forwarder string) {
	at := c.pos(e)
	if s, ok := stringLit(e); ok {
		if forwarder == "" && code == codes.Unknown {
			c.t.Errorf("%s: reason %s: its code was not found", at, s)
		}
		c.found = append(c.found, reasonSource{reason: s, code: code, forwarder: forwarder, at: at})
		return
	}
	expr := exprString(e)
	fwd, ok := passThrough[expr]
	if !ok {
		c.t.Errorf("%s: the reason %s is not a string literal; write it as one, or list the expression in passThrough", at, expr)
		return
	}
	if fwd != "" {
		c.forwarded[fwd] = code
	}
}

func (c *collector) pos(n ast.Node) string {
	p := c.fset.Position(n.Pos())
	return fmt.Sprintf("%s:%d", filepath.Base(p.Filename), p.Line)
}

// kindCode is the gRPC code of the service kind named by e (KindInvalid, service.KindInvalid).
// A kind that is not a constant (newError's own parameter) is codes.Unknown, and then its reason
// must be a pass-through.
func (c *collector) kindCode(e ast.Expr) codes.Code {
	name := exprString(e)
	name = strings.TrimPrefix(name, "service.")
	k, ok := c.kinds[name]
	if !ok {
		return codes.Unknown
	}
	code, ok := codeOf[k]
	if !ok {
		c.t.Errorf("%s: kind %s has no code in codeOf", c.pos(e), name)
	}
	return code
}

// errorKinds reads the constants of service.ErrorKind, in order, from their declaration.
func errorKinds(t *testing.T, path string) map[string]service.ErrorKind {
	t.Helper()
	f, err := parser.ParseFile(token.NewFileSet(), path, nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	kinds := map[string]service.ErrorKind{}
	for _, d := range f.Decls {
		g, ok := d.(*ast.GenDecl)
		if !ok || g.Tok != token.CONST || len(g.Specs) == 0 {
			continue
		}
		if first := g.Specs[0].(*ast.ValueSpec); first.Type == nil || exprString(first.Type) != "ErrorKind" {
			continue
		}
		for i, s := range g.Specs {
			for _, n := range s.(*ast.ValueSpec).Names {
				kinds[n.Name] = service.ErrorKind(i)
			}
		}
	}
	if len(kinds) != len(codeOf) {
		t.Fatalf("read %d error kinds from %s, codeOf maps %d", len(kinds), path, len(codeOf))
	}
	return kinds
}

// grpcCode is the code named by a codes.X expression.
func grpcCode(t *testing.T, expr string) codes.Code {
	name, ok := strings.CutPrefix(expr, "codes.")
	for c := codes.OK; c <= codes.Unauthenticated; c++ {
		if ok && c.String() == name {
			return c
		}
	}
	t.Errorf("statusError with code %s: not a codes constant", expr)
	return codes.Unknown
}

// codeName is a code as the protos spell it: INVALID_ARGUMENT.
func codeName(c codes.Code) string {
	if c == codes.Canceled {
		return "CANCELLED"
	}
	var b strings.Builder
	for i, r := range c.String() {
		if i > 0 && unicode.IsUpper(r) {
			b.WriteByte('_')
		}
		b.WriteRune(unicode.ToUpper(r))
	}
	return b.String()
}

func names(cs []codes.Code) []string {
	var out []string
	for _, c := range cs {
		out = append(out, codeName(c))
	}
	return out
}

// reasonLine is one entry of the list of reasons: "//   - REASON (CODE; metadata …): what to do".
var reasonLine = regexp.MustCompile(`^//   - ([A-Z][A-Z0-9_]*) \(([A-Z_]+)[;)]`)

// documentedReasons reads the reasons, and the code of each, from the comment above
// `service ErasureService`.
func documentedReasons(t *testing.T, path string) map[string][]codes.Code {
	t.Helper()
	src, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(string(src), "\n")
	end := slices.IndexFunc(lines, func(l string) bool { return strings.HasPrefix(l, "service ErasureService ") })
	if end < 0 {
		t.Fatalf("%s declares no ErasureService", path)
	}
	start := end
	for start > 0 && strings.HasPrefix(lines[start-1], "//") {
		start--
	}
	byName := map[string]codes.Code{}
	for c := codes.OK; c <= codes.Unauthenticated; c++ {
		byName[codeName(c)] = c
	}
	out := map[string][]codes.Code{}
	for i, l := range lines[start:end] {
		m := reasonLine.FindStringSubmatch(l)
		if m == nil {
			if strings.HasPrefix(l, "//   - ") {
				t.Errorf("%s:%d: a list entry that is not `REASON (CODE…): …`: %q", path, start+i+1, l)
			}
			continue
		}
		code, ok := byName[m[2]]
		if !ok {
			t.Errorf("%s:%d: reason %s: %s is not a gRPC code", path, start+i+1, m[1], m[2])
		}
		out[m[1]] = append(out[m[1]], code)
	}
	return out
}

func stringLit(e ast.Expr) (string, bool) {
	b, ok := e.(*ast.BasicLit)
	if !ok || b.Kind != token.STRING {
		return "", false
	}
	s, err := strconv.Unquote(b.Value)
	return s, err == nil
}

// exprString is an identifier or selector as written (x, pkg.X, a.b.c); "" for anything else.
func exprString(e ast.Expr) string {
	switch e := e.(type) {
	case *ast.Ident:
		return e.Name
	case *ast.SelectorExpr:
		if x := exprString(e.X); x != "" {
			return x + "." + e.Sel.Name
		}
	case *ast.StarExpr:
		return exprString(e.X)
	}
	return ""
}
