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

// TestGRPCWindowsAreStatic speaks HTTP/2 to the client API's gRPC port
// frame by frame: the node announces the static windows (api.StreamWindow,
// api.ConnWindow), and a call is answered without a PING of the node's.
// With gRPC's default, estimated windows the node sends a PING on the
// call's first data (its bandwidth estimate), which the client must read
// and answer: two frames more a call on a path every create takes.
func TestGRPCWindowsAreStatic(t *testing.T) {
	cl := limitsCluster(t, func(*config.LimitsConfig) {})
	c, err := net.DialTimeout("tcp", cl.Members[0].Cfg.GRPC.Addr, 5*time.Second)
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

	// A call: GetCase of a case that is not there (NOT_FOUND in the
	// trailers; nothing is written).
	var hb bytes.Buffer
	enc := hpack.NewEncoder(&hb)
	for _, f := range [][2]string{
		{":method", "POST"}, {":scheme", "http"}, {":path", "/cityhub.v1.CaseService/GetCase"},
		{":authority", cl.Members[0].Cfg.GRPC.Addr}, {"content-type", "application/grpc"}, {"te", "trailers"},
	} {
		_ = enc.WriteField(hpack.HeaderField{Name: f[0], Value: f[1]})
	}
	msg, _ := proto.Marshal(&pb.GetCaseRequest{CaseId: "320582-20010909-000001"})
	body := binary.BigEndian.AppendUint32([]byte{0}, uint32(len(msg)))
	body = append(body, msg...)
	if err := fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: hb.Bytes(), EndHeaders: true}); err != nil {
		t.Fatal(err)
	}
	if err := fr.WriteData(1, true, body); err != nil {
		t.Fatal(err)
	}

	var streamWindow uint32
	var connWindow int64 = 65535 // HTTP/2's initial connection window, before any WINDOW_UPDATE
	var status string
	for status == "" {
		f, err := fr.ReadFrame()
		if err != nil {
			t.Fatalf("reading the node's frames: %v", err)
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
				t.Fatalf("the node sent a PING during a call (%x): its windows are estimated, not static", f.Data)
			}
		case *http2.MetaHeadersFrame:
			if f.StreamID == 1 && f.StreamEnded() {
				status = "grpc-status " + metaValue(f, "grpc-status")
			}
		case *http2.GoAwayFrame:
			t.Fatalf("GOAWAY: %v %s", f.ErrCode, f.DebugData())
		}
	}
	if status != "grpc-status 5" { // NOT_FOUND
		t.Fatalf("the call ended with %q, want NOT_FOUND in its trailers", status)
	}
	if streamWindow != api.StreamWindow || connWindow != api.ConnWindow {
		t.Fatalf("windows announced: %d a call, %d the connection; want %d and %d",
			streamWindow, connWindow, api.StreamWindow, api.ConnWindow)
	}
}

func metaValue(f *http2.MetaHeadersFrame, name string) string {
	for _, hf := range f.RegularFields() {
		if hf.Name == name {
			return hf.Value
		}
	}
	return ""
}
