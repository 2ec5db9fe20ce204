// Command wasmtube-example calls the wasmtube daemon from Go with the stubs
// protoc-gen-go and protoc-gen-go-grpc generated from
// proto/wasmtube/v1/wasmtube.proto (committed in gen/wasmtube/v1): it lists
// the modules, calls a JSON function and an image function, streams frames
// through one CallStream, and shows what a failed call looks like.
//
//	./run.sh [TARGET]      # TARGET defaults to $WASMTUBE_TARGET or 127.0.0.1:50051
//
// Every result is printed to stdout as one JSON object per line. A call that
// fails unexpectedly, or an answer that is not what the call should give,
// prints to stderr and the program exits with status 1.
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"time"
	"unicode"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	wasmtubev1 "github.com/wasmtube/wasmtube/examples/go/gen/wasmtube/v1"
)

// The daemon accepts messages up to 64 MiB by default (--max-message-size);
// grpc-go receives at most 4 MiB unless told otherwise.
const maxMessageSize = 64 << 20

func main() {
	target := "127.0.0.1:50051"
	if len(os.Args) > 1 {
		target = os.Args[1]
	} else if env := os.Getenv("WASMTUBE_TARGET"); env != "" {
		target = env
	}
	// How long each call may take; the daemon also stops the guest at this deadline.
	deadline := 5 * time.Second
	if env := os.Getenv("WASMTUBE_DEADLINE_MS"); env != "" {
		ms, err := strconv.Atoi(env)
		if err != nil {
			fmt.Fprintf(os.Stderr, "WASMTUBE_DEADLINE_MS=%q is not a number of milliseconds\n", env)
			os.Exit(2)
		}
		deadline = time.Duration(ms) * time.Millisecond
	}

	if err := run(target, deadline); err != nil {
		if s, ok := status.FromError(err); ok && s.Code() != codes.Unknown {
			// A gRPC error: its status code name and the daemon's message.
			fmt.Fprintf(os.Stderr, "wasmtube call to %s failed: %s: %s\n", target, codeName(s.Code()), s.Message())
		} else {
			fmt.Fprintf(os.Stderr, "wasmtube example against %s failed: %v\n", target, err)
		}
		os.Exit(1)
	}
}

func run(target string, deadline time.Duration) error {
	// Plaintext, as the daemon listens by default. grpc.Dial does not wait for
	// the connection: an unreachable target fails the first call, UNAVAILABLE.
	// (grpc.WithInsecure is what Debian's grpc-go 1.33 offers; newer releases
	// also have grpc.WithTransportCredentials(insecure.NewCredentials()).)
	conn, err := grpc.Dial(target,
		grpc.WithInsecure(),
		grpc.WithDefaultCallOptions(
			grpc.MaxCallRecvMsgSize(maxMessageSize),
			grpc.MaxCallSendMsgSize(maxMessageSize),
		),
	)
	if err != nil {
		return err
	}
	defer conn.Close()
	client := wasmtubev1.NewWasmtubeClient(conn)
	withDeadline := func() (context.Context, context.CancelFunc) {
		return context.WithTimeout(context.Background(), deadline)
	}

	// 1. Which modules are loaded, and what can be called?
	ctx, cancel := withDeadline()
	listing, err := client.ListModules(ctx, &wasmtubev1.ListModulesRequest{})
	cancel()
	if err != nil {
		return err
	}
	modules := []moduleSummary{}
	for _, m := range listing.GetModules() {
		functions := []functionSummary{}
		for _, f := range m.GetFunctions() {
			functions = append(functions, functionSummary{
				Name:              f.GetName(),
				CallingConvention: f.GetCallingConvention().String(), // enum values by name
				Signature:         f.GetSignature(),
			})
		}
		modules = append(modules, moduleSummary{
			Name:       m.GetName(),
			Sha256:     m.GetSha256(),
			Generation: m.GetGeneration(),
			SizeBytes:  m.GetSizeBytes(),
			// A google.protobuf.Timestamp; AsTime gives a time.Time.
			LoadedAt:  m.GetLoadedAt().AsTime().Format(time.RFC3339Nano),
			Functions: functions,
			LastError: m.GetLastError(),
		})
	}
	printLine(line{RPC: "ListModules", Modules: modules})

	// 2. A JSON call: Json is a string holding a JSON document.
	input, err := json.Marshal(map[string]string{"args": "Hello from Go"})
	if err != nil {
		return err
	}
	ctx, cancel = withDeadline()
	echo, err := client.Call(ctx, &wasmtubev1.CallRequest{
		Module:   "wasm_test",
		Function: "echo",
		Input:    &wasmtubev1.CallRequest_Json{Json: string(input)},
	})
	cancel()
	if err != nil {
		return err
	}
	var echoed map[string]any
	if err := json.Unmarshal([]byte(echo.GetJson()), &echoed); err != nil {
		return fmt.Errorf("echo answered %q, not JSON: %w", echo.GetJson(), err)
	}
	if echoed["args"] != "Hello from Go" {
		return fmt.Errorf("echo answered %s, expected the input back", echo.GetJson())
	}
	printCall("wasm_test", "echo", echoed, echo)

	// 3. An image call: raw RGB8 pixels, row-major, width*height*3 bytes,
	//    here 2 wide and 3 high. The format may stay unset: that means RGB8.
	const width, height = 2, 3
	pixels := make([]byte, width*height*3)
	for i := range pixels {
		pixels[i] = byte(i * 10) // any pixels do for image_size
	}
	ctx, cancel = withDeadline()
	size, err := client.Call(ctx, &wasmtubev1.CallRequest{
		Module:   "wasm_test",
		Function: "image_size",
		Input: &wasmtubev1.CallRequest_Image{Image: &wasmtubev1.Image{
			Data: pixels, Width: width, Height: height,
		}},
	})
	cancel()
	if err != nil {
		return err
	}
	var dimensions struct {
		Width  uint32 `json:"width"`
		Height uint32 `json:"height"`
	}
	if err := json.Unmarshal([]byte(size.GetJson()), &dimensions); err != nil {
		return fmt.Errorf("image_size answered %q, not JSON: %w", size.GetJson(), err)
	}
	if dimensions.Width != width || dimensions.Height != height {
		return fmt.Errorf("image_size answered %s for a %dx%d image", size.GetJson(), width, height)
	}
	printCall("wasm_test", "image_size", dimensions, size)

	// 4. Frames through one CallStream, answered in order, one response per
	//    frame. Only the first message names the module and function; the
	//    daemon runs the whole stream on one warm instance. grayscale turns
	//    each RGB8 frame into a GRAY8 image; a frame of one value v comes back
	//    as v everywhere.
	values := []byte{0, 100, 255}
	outputs, err := stream(client, deadline, "wasm_test", "grayscale", width, height, values)
	if err != nil {
		return err
	}
	printLine(line{RPC: "CallStream", Module: "wasm_test", Function: "grayscale", Outputs: outputs})

	// 5. A call that fails on purpose: each failure is a gRPC status, here
	//    NOT_FOUND. Expected errors are handled by their code; anything else
	//    is returned to main.
	ctx, cancel = withDeadline()
	_, err = client.Call(ctx, &wasmtubev1.CallRequest{
		Module:   "no_such_module",
		Function: "echo",
		Input:    &wasmtubev1.CallRequest_Json{Json: "{}"},
	})
	cancel()
	if err == nil {
		return errors.New("calling a missing module succeeded; expected NOT_FOUND")
	}
	if status.Code(err) != codes.NotFound {
		return err
	}
	printLine(line{RPC: "Call", Module: "no_such_module", Function: "echo", Error: &statusSummary{
		Code: codeName(status.Code(err)), Details: status.Convert(err).Message(),
	}})
	return nil
}

// stream sends one width x height RGB8 frame per value over a single
// CallStream and checks that exactly one response comes back per frame, in
// order: a GRAY8 image of the same size holding that value.
func stream(client wasmtubev1.WasmtubeClient, deadline time.Duration, module, function string,
	width, height uint32, values []byte) ([]imageSummary, error) {
	ctx, cancel := context.WithTimeout(context.Background(), deadline)
	defer cancel()
	calls, err := client.CallStream(ctx)
	if err != nil {
		return nil, err
	}
	// Send every frame, then close the sending side. The frames here are
	// small; a real pipeline sends from one goroutine and receives in another,
	// so flow control never stalls both sides at once.
	for i, v := range values {
		request := &wasmtubev1.CallRequest{Input: &wasmtubev1.CallRequest_Image{Image: &wasmtubev1.Image{
			Data: bytes.Repeat([]byte{v}, int(width*height*3)), Width: width, Height: height,
		}}}
		if i == 0 {
			request.Module, request.Function = module, function
		}
		if err := calls.Send(request); err != nil {
			// The stream failed: Recv returns its status.
			if err == io.EOF {
				break
			}
			return nil, err
		}
	}
	if err := calls.CloseSend(); err != nil {
		return nil, err
	}

	outputs := []imageSummary{}
	for i := 0; ; i++ {
		response, err := calls.Recv()
		if err == io.EOF {
			if i != len(values) {
				return nil, fmt.Errorf("CallStream answered %d of %d frames", i, len(values))
			}
			return outputs, nil
		}
		if err != nil {
			return nil, err
		}
		if i >= len(values) {
			return nil, fmt.Errorf("CallStream answered more responses than the %d frames sent", len(values))
		}
		image := response.GetImage()
		want := bytes.Repeat([]byte{values[i]}, int(width*height))
		if image == nil || image.GetFormat() != wasmtubev1.PixelFormat_PIXEL_FORMAT_GRAY8 ||
			image.GetWidth() != width || image.GetHeight() != height || !bytes.Equal(image.GetData(), want) {
			return nil, fmt.Errorf("CallStream response %d is not frame %d in GRAY8: %v", i, i, response)
		}
		outputs = append(outputs, imageSummary{
			Width:  image.GetWidth(),
			Height: image.GetHeight(),
			Format: image.GetFormat().String(),
			Bytes:  len(image.GetData()),
			First:  int(image.GetData()[0]),
		})
	}
}

// line is one line of output: what one RPC gave.
type line struct {
	RPC          string          `json:"rpc"`
	Module       string          `json:"module,omitempty"`
	Function     string          `json:"function,omitempty"`
	Modules      []moduleSummary `json:"modules,omitempty"`
	Result       any             `json:"result,omitempty"`
	Outputs      []imageSummary  `json:"outputs,omitempty"`
	Error        *statusSummary  `json:"error,omitempty"`
	ModuleSha256 string          `json:"module_sha256,omitempty"`
	Generation   uint64          `json:"generation,omitempty"`
}

type moduleSummary struct {
	Name       string            `json:"name"`
	Sha256     string            `json:"sha256"`
	Generation uint64            `json:"generation"`
	SizeBytes  uint64            `json:"size_bytes"`
	LoadedAt   string            `json:"loaded_at"`
	Functions  []functionSummary `json:"functions"`
	LastError  string            `json:"last_error"`
}

type functionSummary struct {
	Name              string `json:"name"`
	CallingConvention string `json:"calling_convention"`
	Signature         string `json:"signature"`
}

// imageSummary describes an image without its pixels: the first byte stands
// for the rest.
type imageSummary struct {
	Width  uint32 `json:"width"`
	Height uint32 `json:"height"`
	Format string `json:"format"`
	Bytes  int    `json:"bytes"`
	First  int    `json:"first"`
}

type statusSummary struct {
	Code    string `json:"code"`
	Details string `json:"details"`
}

// printCall prints a successful Call: its output and which version of the
// module served it.
func printCall(module, function string, result any, response *wasmtubev1.CallResponse) {
	printLine(line{
		RPC:          "Call",
		Module:       module,
		Function:     function,
		Result:       result,
		ModuleSha256: response.GetModuleSha256(),
		Generation:   response.GetGeneration(),
	})
}

var stdout = json.NewEncoder(os.Stdout)

func init() {
	stdout.SetEscapeHTML(false) // "(i32, i32) -> i32", not "-\u003e"
}

// printLine writes one JSON object and a newline to stdout.
func printLine(l line) {
	if err := stdout.Encode(l); err != nil {
		panic(err)
	}
}

// codeName spells a status code as gRPC's documentation and the other
// clients do: NOT_FOUND, not NotFound.
func codeName(code codes.Code) string {
	var name []rune
	previous := rune(0)
	for _, r := range code.String() {
		if unicode.IsUpper(r) && unicode.IsLower(previous) {
			name = append(name, '_')
		}
		name = append(name, unicode.ToUpper(r))
		previous = r
	}
	return string(name)
}
