/*
 * test_kinds.c - the kind table has a row for every layer kind.  The table's static
 * assertion only sees its length: a kind inserted in the middle of the enum without a
 * row shifts the later rows and leaves a hole of the right total size.  So every kind
 * is checked here: a name of its own that reads back to it, and (but for the input,
 * which the graph handles itself) a layer implementation with the required entries.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "../engine/internal.h"

static void test_every_kind_has_a_name_and_an_implementation(void **state)
{
    (void)state;
    for (int k = 0; k < LOP_KIND_COUNT; k++) {
        const char *name = lop_kind_name((lop_kind)k);
        assert_non_null(name);
        assert_string_not_equal(name, "unknown");
        lop_kind back;
        assert_int_equal(lop_kind_from_name(name, &back), LOP_OK);
        assert_int_equal(back, k);
        for (int j = 0; j < k; j++)
            assert_string_not_equal(name, lop_kind_name((lop_kind)j));
        const lop_layer_ops *ops = lop_layer_ops_of((lop_kind)k);
        if (k == LOP_INPUT) {
            assert_null(ops);
            continue;
        }
        assert_non_null(ops);
        assert_non_null(ops->infer);
        assert_non_null(ops->forward);
        assert_non_null(ops->backward);
    }
    assert_string_equal(lop_kind_name(LOP_KIND_COUNT), "unknown");
    assert_null(lop_layer_ops_of(LOP_KIND_COUNT));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_kind_has_a_name_and_an_implementation),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
