package api_test

import (
	"bytes"
	"encoding/binary"
	"net"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
	"google.golang.org/protobuf/proto"

	"github.com/cityhub/cityhub/config"
	pb "github.com/cityhub/cityhub/proto/cityhub/v1"
	"github.com/cityhub/cityhub/tiers/api"
)

// TestGRPCWindowsAreStatic speaks HTTP/2 frame by frame to a node's two
// gRPC listeners, the client API and the internal one its fellows
// forward to: each announces the static windows (api.StreamWindow,
// api.ConnWindow) and answers a call without a PING of its own. With
// gRPC's default, estimated windows a node sends a PING on a call's
// first data (its bandwidth estimate), which the caller must read and
// answer: two frames more a call on a path every create takes.
func TestGRPCWindowsAreStatic(t *testing.T) {
	cl := limitsCluster(t, func(*config.LimitsConfig) {})
	getCase, _ := proto.Marshal(&pb.GetCaseRequest{CaseId: "320582-20010909-000001"})
	for _, tc := range []struct {
		listener, addr, path string
		msg                  []byte
		status               string
	}{
		// A case that is not there: NOT_FOUND, nothing written.
		{"client API", cl.Members[0].Cfg.GRPC.Addr, "/cityhub.v1.CaseService/GetCase", getCase, "5"},
		// A proposal without a command: INVALID_ARGUMENT.
		{"internal", cl.Members[0].Cfg.Internal.Addr, "/cityhub.v1.ForwardService/Propose", nil, "3"},
	} {
		streamWindow, connWindow, status := callFrameByFrame(t, tc.addr, tc.path, tc.msg)
		if status != tc.status {
			t.Errorf("%s: the call ended with grpc-status %q, want %q", tc.listener, status, tc.status)
		}
		if streamWindow != api.StreamWindow || connWindow != api.ConnWindow {
			t.Errorf("%s: windows announced: %d a call, %d the connection; want %d and %d",
				tc.listener, streamWindow, connWindow, api.StreamWindow, api.ConnWindow)
		}
	}
}

// callFrameByFrame makes one unary call to path at addr over a raw HTTP/2
// connection and returns the windows the server announced and the call's
// grpc-status. It fails the test on a PING from the server.
func callFrameByFrame(t *testing.T, addr, path string, msg []byte) (streamWindow uint32, connWindow int64, status string) {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(30 * time.Second))
	if _, err := c.Write([]byte(http2.ClientPreface)); err != nil {
		t.Fatal(err)
	}
	fr := http2.NewFramer(c, c)
	fr.ReadMetaHeaders = hpack.NewDecoder(4096, nil)
	if err := fr.WriteSettings(); err != nil {
		t.Fatal(err)
	}
	var hb bytes.Buffer
	enc := hpack.NewEncoder(&hb)
	for _, f := range [][2]string{
		{":method", "POST"}, {":scheme", "http"}, {":path", path},
		{":authority", addr}, {"content-type", "application/grpc"}, {"te", "trailers"},
	} {
		_ = enc.WriteField(hpack.HeaderField{Name: f[0], Value: f[1]})
	}
	body := binary.BigEndian.AppendUint32([]byte{0}, uint32(len(msg)))
	body = append(body, msg...)
	if err := fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: hb.Bytes(), EndHeaders: true}); err != nil {
		t.Fatal(err)
	}
	if err := fr.WriteData(1, true, body); err != nil {
		t.Fatal(err)
	}

	connWindow = 65535 // HTTP/2's initial connection window, before any WINDOW_UPDATE
	for ended := false; !ended; {
		f, err := fr.ReadFrame()
		if err != nil {
			t.Fatalf("%s: reading the node's frames: %v", addr, err)
		}
		switch f := f.(type) {
		case *http2.SettingsFrame:
			if f.IsAck() {
				continue
			}
			if v, ok := f.Value(http2.SettingInitialWindowSize); ok {
				streamWindow = v
			}
			if err := fr.WriteSettingsAck(); err != nil {
				t.Fatal(err)
			}
		case *http2.WindowUpdateFrame:
			if f.StreamID == 0 {
				connWindow += int64(f.Increment)
			}
		case *http2.PingFrame:
			if !f.IsAck() {
				t.Fatalf("%s: the node sent a PING during a call (%x): its windows are estimated, not static", addr, f.Data)
			}
		case *http2.MetaHeadersFrame:
			if f.StreamID == 1 && f.StreamEnded() {
				ended, status = true, metaValue(f, "grpc-status")
			}
		case *http2.GoAwayFrame:
			t.Fatalf("%s: GOAWAY: %v %s", addr, f.ErrCode, f.DebugData())
		}
	}
	return streamWindow, connWindow, status
}

func metaValue(f *http2.MetaHeadersFrame, name string) string {
	for _, hf := range f.RegularFields() {
		if hf.Name == name {
			return hf.Value
		}
	}
	return ""
}
