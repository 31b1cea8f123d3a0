package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"strconv"

	"github.com/spf13/cobra"

	pb "github.com/cityhub/cityhub/proto/cityhub/v1"
)

// geoCmd is `cityhubctl geo`: the grid register's geometry.
func (a *app) geoCmd() *cobra.Command {
	c := &cobra.Command{
		Use:   "geo",
		Short: "Locate a point in the unit grids (单元网格) and fetch their polygons",
	}
	c.AddCommand(a.geoLocateCmd(), a.geoGridsCmd())
	return c
}

func (a *app) geoClient() (pb.GeoServiceClient, error) {
	conn, err := a.dial()
	if err != nil {
		return nil, err
	}
	return pb.NewGeoServiceClient(conn), nil
}

func (a *app) geoLocateCmd() *cobra.Command {
	var req pb.LocateRequest
	c := &cobra.Command{
		Use:   "locate --lat LAT --lng LNG [--crs gcj02]",
		Short: "Show the grid a point lies in, its jurisdictions and the node that holds it",
		Long: `Find the unit grid (单元网格) a point lies in from the node's grid layer
(geo.grids): its 15-digit code and name, the community, street, district
and city above it with the node of each, the node that holds cases there,
and the point in WGS-84 as cases store it.

--crs names the coordinate system of --lat/--lng: wgs84 (GPS, the
default), gcj02 (高德/腾讯 maps published in China) or bd09 (百度). A point
outside every grid is an error naming the field.`,
		Example: `  cityhubctl geo locate --lat 31.29665 --lng 120.55911 --crs gcj02
  cityhubctl -o json geo locate --lat 31.2988 --lng 120.5547`,
		Args: cobra.NoArgs,
		RunE: a.runE(func(ctx context.Context, _ *cobra.Command, _ []string) error {
			cl, err := a.geoClient()
			if err != nil {
				return err
			}
			cctx, cancel := a.call(ctx)
			defer cancel()
			resp, err := cl.Locate(cctx, &req)
			if err != nil {
				return err
			}
			if a.output == "json" {
				return writeJSON(a.stdout, resp)
			}
			return writeLocated(a.stdout, resp)
		}),
	}
	f := c.Flags()
	f.Float64Var(&req.Lat, "lat", 0, "latitude in degrees")
	f.Float64Var(&req.Lng, "lng", 0, "longitude in degrees")
	f.StringVar(&req.Crs, "crs", "wgs84", "coordinate system of the point: wgs84, gcj02 or bd09")
	for _, name := range []string{"lat", "lng"} {
		_ = c.MarkFlagRequired(name)
	}
	return c
}

func writeLocated(w io.Writer, r *pb.LocateResponse) error {
	tw := newTable(w)
	row(tw, "grid:", r.GetGridCode()+"  "+r.GetGridName())
	for _, j := range r.GetChain() {
		row(tw, tiers.name(j.GetTier())+":", j.GetCode()+"  "+orDash(j.GetName())+"  (node "+orDash(j.GetNode())+")")
	}
	holder := orDash(r.GetNode())
	if r.GetHere() {
		holder += " (this node takes its reports)"
	} else if r.GetNode() != "" {
		holder += " (report there)"
	}
	row(tw, "held by:", holder)
	row(tw, "wgs84:", strconv.FormatFloat(r.GetLat(), 'f', 7, 64)+", "+strconv.FormatFloat(r.GetLng(), 'f', 7, 64))
	return tw.Flush()
}

func (a *app) geoGridsCmd() *cobra.Command {
	var (
		req pb.GridGeometryRequest
		out string
	)
	c := &cobra.Command{
		Use:   "grids [--node NAME] [--prefix CODE] [--level grid|community|street|district|city]",
		Short: "Write the polygons of a node's area as GeoJSON (for a map or a GIS)",
		Long: `Write the grid polygons of a node's area (this node's by default, or
--node's, or the jurisdiction --prefix inside it) as a GeoJSON
FeatureCollection in WGS-84: each grid with its code and names, or with
--level each community, street or district as the union of its grids.
Without --out the GeoJSON goes to standard output; with -o table only a
count is printed.`,
		Example: `  cityhubctl geo grids --out grids.geojson
  cityhubctl geo grids --node d-320505 --level street --out streets.geojson`,
		Args: cobra.NoArgs,
		RunE: a.runE(func(ctx context.Context, _ *cobra.Command, _ []string) error {
			cl, err := a.geoClient()
			if err != nil {
				return err
			}
			cctx, cancel := a.call(ctx)
			defer cancel()
			resp, err := cl.GetGridGeometry(cctx, &req)
			if err != nil {
				return err
			}
			if out != "" {
				if err := os.WriteFile(out, []byte(resp.GetGeojson()), 0o644); err != nil {
					return err
				}
				_, err = fmt.Fprintf(a.stdout, "%d features written to %s\n", resp.GetFeatures(), out)
				return err
			}
			_, err = io.WriteString(a.stdout, resp.GetGeojson()+"\n")
			return err
		}),
	}
	f := c.Flags()
	f.StringVar(&req.Node, "node", "", "the federation node whose area to write (default: the node --addr reaches)")
	f.StringVar(&req.Prefix, "prefix", "", "a jurisdiction code (grid code prefix) inside the area")
	f.StringVar(&req.Level, "level", "grid", "grid, community, street, district or city")
	f.StringVarP(&out, "out", "f", "", "write the GeoJSON to this file instead of standard output")
	return c
}
