package main

import (
	"context"
	"fmt"
	"io"

	"github.com/spf13/cobra"
	"google.golang.org/protobuf/proto"

	pb "github.com/cityhub/cityhub/proto/cityhub/v1"
)

func (a *app) clusterCmd() *cobra.Command {
	c := &cobra.Command{
		Use:   "cluster",
		Short: "Administer the Raft group of a tier node",
	}
	c.AddCommand(a.statusCmd(), a.joinCmd(), a.removeCmd(), a.transferCmd())
	return c
}

func (a *app) statusCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "status",
		Short: "Show the node's Raft state and the group's servers",
		Args:  cobra.NoArgs,
		RunE: a.runE(showCluster(a, func(ctx context.Context, cl pb.ClusterServiceClient) (*pb.ClusterStatus, error) {
			return cl.GetStatus(ctx, &pb.GetStatusRequest{})
		}, writeClusterStatus)),
	}
}

func (a *app) joinCmd() *cobra.Command {
	var req pb.JoinRequest
	c := &cobra.Command{
		Use:   "join NODE_ID RAFT_ADDR",
		Short: "Add a server to the Raft group (asked of the leader)",
		Example: `  cityhubctl cluster join node-2 10.0.0.2:7001 --grpc-addr 10.0.0.2:7101 --http-addr 10.0.0.2:7201
  cityhubctl cluster join reader-1 10.0.0.9:7001 --grpc-addr 10.0.0.9:7101 --nonvoter`,
		Args: cobra.ExactArgs(2),
		RunE: a.runE(func(ctx context.Context, _ *cobra.Command, args []string) error {
			req.NodeId, req.RaftAddr = args[0], args[1]
			cl, err := a.clusterClient()
			if err != nil {
				return err
			}
			ctx, cancel := a.call(ctx)
			defer cancel()
			resp, err := cl.Join(ctx, &req)
			if err != nil {
				return err
			}
			if a.output == "json" {
				return writeJSON(a.stdout, resp)
			}
			return writeClusterStatus(a.stdout, resp.GetStatus())
		}),
	}
	f := c.Flags()
	f.StringVar(&req.GrpcAddr, "grpc-addr", "", "gRPC address of the new server")
	f.StringVar(&req.HttpAddr, "http-addr", "", "HTTP address of the new server")
	f.BoolVar(&req.Nonvoter, "nonvoter", false, "join as a non-voting member (read replica)")
	_ = c.MarkFlagRequired("grpc-addr")
	return c
}

func (a *app) removeCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "remove NODE_ID",
		Short: "Remove a server from the Raft group",
		Args:  cobra.ExactArgs(1),
		RunE: a.runE(func(ctx context.Context, _ *cobra.Command, args []string) error {
			cl, err := a.clusterClient()
			if err != nil {
				return err
			}
			ctx, cancel := a.call(ctx)
			defer cancel()
			resp, err := cl.Remove(ctx, &pb.RemoveRequest{NodeId: args[0]})
			if err != nil {
				return err
			}
			if a.output == "json" {
				return writeJSON(a.stdout, resp)
			}
			return writeClusterStatus(a.stdout, resp.GetStatus())
		}),
	}
}

func (a *app) transferCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "transfer-leader [NODE_ID]",
		Short: "Hand leadership to NODE_ID, or to the most up-to-date follower",
		Args:  cobra.MaximumNArgs(1),
		RunE: a.runE(func(ctx context.Context, _ *cobra.Command, args []string) error {
			var req pb.TransferLeadershipRequest
			if len(args) == 1 {
				req.NodeId = args[0]
			}
			cl, err := a.clusterClient()
			if err != nil {
				return err
			}
			ctx, cancel := a.call(ctx)
			defer cancel()
			resp, err := cl.TransferLeadership(ctx, &req)
			if err != nil {
				return err
			}
			if a.output == "json" {
				return writeJSON(a.stdout, resp)
			}
			_, err = fmt.Fprintf(a.stdout, "new leader: %s\n", resp.GetNewLeaderId())
			return err
		}),
	}
}

// showCluster is a read-only cluster command: one call, then the answer as
// JSON or as a table.
func showCluster[T proto.Message](a *app, call func(context.Context, pb.ClusterServiceClient) (T, error), table func(io.Writer, T) error) func(context.Context, *cobra.Command, []string) error {
	return func(ctx context.Context, _ *cobra.Command, _ []string) error {
		cl, err := a.clusterClient()
		if err != nil {
			return err
		}
		ctx, cancel := a.call(ctx)
		defer cancel()
		st, err := call(ctx, cl)
		if err != nil {
			return err
		}
		if a.output == "json" {
			return writeJSON(a.stdout, st)
		}
		return table(a.stdout, st)
	}
}
