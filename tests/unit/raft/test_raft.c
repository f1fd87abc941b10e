/*
 * test_raft.c: the Raft unit tests, one group per concept (log, election, replication,
 * reads, membership, node API). Each test names the rule it checks and cites it.
 */
#include "raft_tests.h"

int main(void)
{
    int failed = 0;
    failed += raft_test_log_group();
    failed += raft_test_election_group();
    failed += raft_test_replication_group();
    failed += raft_test_read_group();
    failed += raft_test_membership_group();
    failed += raft_test_node_group();
    return failed ? 1 : 0;
}
