// Command rpcwire checks that the google/rpc definitions under third_party/googleapis have the
// wire format of the ones Go's gRPC uses (google.golang.org/genproto/googleapis/rpc): the same
// messages, and in each the same fields with the same numbers, types, cardinality and JSON
// names. A client that decodes erasured's error details with them then reads what the server
// wrote. examples/run.sh runs it on a descriptor set that protoc builds from those files:
//
//	protoc -I third_party/googleapis -I /usr/include --include_imports -o rpc.binpb \
//	  google/rpc/status.proto google/rpc/error_details.proto
//	go run ./examples/rpcwire rpc.binpb
package main

import (
	"fmt"
	"os"
	"slices"

	_ "google.golang.org/genproto/googleapis/rpc/errdetails" // registers google/rpc/error_details.proto
	_ "google.golang.org/genproto/googleapis/rpc/status"     // registers google/rpc/status.proto
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protodesc"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
	"google.golang.org/protobuf/types/descriptorpb"
)

// files are the definitions erasured ships.
var files = []string{"google/rpc/status.proto", "google/rpc/error_details.proto"}

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: rpcwire DESCRIPTOR_SET")
		os.Exit(2)
	}
	problems, err := compare(os.Args[1])
	if err != nil {
		fmt.Fprintln(os.Stderr, "rpcwire:", err)
		os.Exit(1)
	}
	for _, p := range problems {
		fmt.Fprintln(os.Stderr, "rpcwire:", p)
	}
	if len(problems) > 0 {
		os.Exit(1)
	}
	fmt.Println("rpcwire: third_party/googleapis matches the wire format of Go's google.rpc definitions")
}

// compare returns every difference between the files of the descriptor set and genproto's.
func compare(path string) ([]string, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var set descriptorpb.FileDescriptorSet
	if err := proto.Unmarshal(raw, &set); err != nil {
		return nil, err
	}
	ours, err := protodesc.NewFiles(&set)
	if err != nil {
		return nil, err
	}
	var problems []string
	for _, name := range files {
		a, err := ours.FindFileByPath(name)
		if err != nil {
			return nil, fmt.Errorf("%s is not in %s: %w", name, path, err)
		}
		b, err := protoregistry.GlobalFiles.FindFileByPath(name)
		if err != nil {
			return nil, err
		}
		if a.Package() != b.Package() {
			problems = append(problems, fmt.Sprintf("%s: package %s, want %s", name, a.Package(), b.Package()))
		}
		fa, fb := map[string]string{}, map[string]string{}
		fields(a.Messages(), fa)
		fields(b.Messages(), fb)
		for _, k := range sortedKeys(fb) {
			if fa[k] != fb[k] {
				problems = append(problems, fmt.Sprintf("%s: %s is %q, want %q", name, k, fa[k], fb[k]))
			}
		}
		for _, k := range sortedKeys(fa) {
			if _, ok := fb[k]; !ok {
				problems = append(problems, fmt.Sprintf("%s: %s is not in Go's definition", name, k))
			}
		}
	}
	return problems, nil
}

// fields describes every message and field of msgs, nested ones included, by full name.
func fields(msgs protoreflect.MessageDescriptors, out map[string]string) {
	for i := range msgs.Len() {
		md := msgs.Get(i)
		out[string(md.FullName())] = "message"
		for j := range md.Fields().Len() {
			f := md.Fields().Get(j)
			kind := f.Kind().String()
			if f.Message() != nil {
				kind = string(f.Message().FullName())
			}
			out[string(f.FullName())] = fmt.Sprintf("%d %v %s json=%s presence=%v", f.Number(), f.Cardinality(), kind, f.JSONName(), f.HasPresence())
		}
		fields(md.Messages(), out)
	}
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
