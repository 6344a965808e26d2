module github.com/erasured/erasured/examples/go

go 1.21

require (
	github.com/erasured/erasured/gen v0.0.0
	google.golang.org/genproto/googleapis/rpc v0.0.0-20240318140521-94a12d6c2237
	google.golang.org/grpc v1.64.1
)

require (
	buf.build/gen/go/bufbuild/protovalidate/protocolbuffers/go v1.29.0-20260825204119-511051f7f437.1 // indirect
	golang.org/x/net v0.26.0 // indirect
	golang.org/x/sys v0.21.0 // indirect
	golang.org/x/text v0.16.0 // indirect
	google.golang.org/protobuf v1.36.0 // indirect
)

// A client outside this repository requires a published version of the gen module instead.
replace github.com/erasured/erasured/gen => ../../gen
