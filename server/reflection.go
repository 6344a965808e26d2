package server

import (
	_ "embed"
	"fmt"

	"google.golang.org/grpc"
	"google.golang.org/grpc/reflection"
	v1 "google.golang.org/grpc/reflection/grpc_reflection_v1"
	v1alpha "google.golang.org/grpc/reflection/grpc_reflection_v1alpha"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protodesc"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
	"google.golang.org/protobuf/types/descriptorpb"
)

// descriptors is the buf image of proto/ (made by `make generate`). Unlike the descriptors
// compiled into gen/, it keeps source info, so reflection serves the proto comments and
// `grpcurl describe` shows the API's documentation.
//
//go:embed descriptors.binpb
var descriptors []byte

// registerReflection serves reflection (v1 and v1alpha) from the commented descriptors, falling
// back to the compiled-in registry for everything else (health, google.rpc error details).
func registerReflection(s *grpc.Server) error {
	var set descriptorpb.FileDescriptorSet
	if err := proto.Unmarshal(descriptors, &set); err != nil {
		return fmt.Errorf("decode embedded descriptors: %w", err)
	}
	files, err := protodesc.NewFiles(&set)
	if err != nil {
		return fmt.Errorf("build embedded descriptors: %w", err)
	}
	opts := reflection.ServerOptions{Services: s, DescriptorResolver: fallbackResolver{files, protoregistry.GlobalFiles}}
	v1.RegisterServerReflectionServer(s, reflection.NewServerV1(opts))
	v1alpha.RegisterServerReflectionServer(s, reflection.NewServer(opts))
	return nil
}

// fallbackResolver looks in the commented files first and in the global registry second.
type fallbackResolver struct{ first, second *protoregistry.Files }

func (r fallbackResolver) FindFileByPath(path string) (protoreflect.FileDescriptor, error) {
	if fd, err := r.first.FindFileByPath(path); err == nil {
		return fd, nil
	}
	return r.second.FindFileByPath(path)
}

func (r fallbackResolver) FindDescriptorByName(name protoreflect.FullName) (protoreflect.Descriptor, error) {
	if d, err := r.first.FindDescriptorByName(name); err == nil {
		return d, nil
	}
	return r.second.FindDescriptorByName(name)
}
