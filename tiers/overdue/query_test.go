package overdue_test

import "github.com/cityhub/cityhub/tiers/store"

func storeQuery() store.Query { return store.Query{Overdue: true, PageSize: 500} }
