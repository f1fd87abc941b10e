/*
 * raft_tests.h: the groups of the Raft unit test executable; each file runs its own group.
 */
#ifndef TKV_RAFT_TESTS_H
#define TKV_RAFT_TESTS_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include <cmocka.h>

#include "raft_test_net.h"

int raft_test_log_group(void);
int raft_test_election_group(void);
int raft_test_replication_group(void);
int raft_test_read_group(void);
int raft_test_membership_group(void);
int raft_test_node_group(void);

#endif /* TKV_RAFT_TESTS_H */
