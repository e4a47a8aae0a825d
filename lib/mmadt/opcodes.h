/* SPDX-License-Identifier: MIT */
/*
 * The mm-ADT instruction set, in the manner of Lua's lopcodes.h.
 *
 * Every instruction works on the current obj `cur` and a slice of arguments
 * A[0..n): a constant or nested code.  Unless the row says "quoted", each
 * argument is first applied to cur (`1.plus(plus(2))` adds 3) and its
 * single result used.  Fan-out instructions call the rest of the chain once
 * per result; barriers (B) receive the whole stream of the chain before them.
 *
 *   opcode      name      Q B  semantics
 *   ----------- --------- - -  ------------------------------------------------
 *   K           (const)   . .  cur := A0 (a constant replaces)
 *   ID          _         . .  cur := cur
 *   URI         (uri)     . .  cur := cur indexed by the uri A0 (fan-out on `+`), or A0
 *   LST         [..]      Q .  cur := [A0(cur),..]; on a lst, Ai applied to cur[i]
 *   REC         [k=>..]   Q .  cur := [k0=>A0(cur),..]; on a rec, Ai applied to cur[ki]
 *   STREAM      {..}      Q .  fan-out: every result of every Ai(cur)
 *   RANGE       {a..b}    . .  fan-out: the ints a..b, lazily
 *   SPLICE      (str/uri) Q .  cur := text of the parts, {{code}} parts applied to cur
 *   ARITH       plus..    . .  cur := cur aux A0 (aux: MM_PLUS MINUS MULT DIV MOD)
 *   NEG         neg       . .  cur := -cur
 *   CMP         eq..      . .  cur := bool(cur aux A0) (aux: MM_EQ NEQ GT GTE LT LTE)
 *   ISCMP       is(eq(x)) . .  keep cur when cur aux A0 holds (`?= x`), else noobj
 *   IS          is        . .  keep cur when A0 is true
 *   NOT         not       . .  keep cur when A0 is false or noobj
 *   AND, OR     and, or   . .  cur := the fold of the bools of A0 (a lst)
 *   ISA         isa       Q .  keep cur when it is an A0
 *   MATCH       match     Q .  cur := bool(cur ~ A0)
 *   TYPE        type      . .  cur := the type uri of cur
 *   AS          as        Q .  cur := cur converted to the type A0
 *   TYPED       T[v]      Q .  cur := A1(cur) checked against and tagged with A0
 *   COUNT       count     . B  the number of objs
 *   SUM, PROD   sum,prod  . B  the fold of the stream with plus / mult
 *   BARRIER     barrier   Q B  A0 applied to the whole stream as one objs
 *   MERGE       merge     . .  fan-out: the values of a poly (at most aux-1 when aux>0)
 *   START       start     . .  fan-out: the objs of A0..An (replacing the stream)
 *   MAP         map       . .  cur := A0
 *   END         end       . .  cur := noobj
 *   ELSE        else      . .  cur := A0 when cur is noobj
 *   OPTION      option    Q .  cur := A0(cur), or cur when that yields noobj
 *   REPEAT      repeat    Q .  cur := A0(cur) until A1(cur) is true (at most A2 times)
 *   GET         get       . .  cur := cur[A0] (lst index or rec key)
 *   PRINT       print     . .  prints cur (or A0) on stdout; cur unchanged
 *   SHIFT       lshift..  . .  drop A0 leading (aux 0) / trailing (aux 1) segments or elements
 *   FROM        from      . .  cur := the store at A0 (A1 when absent)
 *   TO          to        . .  writes cur at A0; cur unchanged
 *   REF         ref       . .  writes A0 at the uri cur (aux 1: transient); cur := A0
 *   REFOP       ref_op    . .  writes cur at A0; cur := A0
 *   AT          at        . .  on noobj: read A0 by reference; else cur@A0 stored at A0
 *   BLOCK       block     Q .  cur := A0 as a code obj
 *   LIFT        lift      Q .  cur := A0 as a code obj (printed lift(..) inside code)
 *   DROP        drop      . .  A0 (a code obj) applied to cur; fan-out
 *   SPLIT       split     Q .  poly: each branch applied to cur (rec keys are patterns)
 *   CHOOSE      choose    Q .  as split, only the first branch with a result keeps it
 *   CHAIN       chain     Q .  each branch applied to the previous branch's result
 *   EACH        each      Q .  element i of A0 applied to element i of cur
 *   WITHIN      within    Q .  A0 run over the elements of cur, collected back
 *   CALL        (name)    Q .  a user, stored or native instruction named aux-table A0
 *   DEF         (inst)    Q .  an inline definition applied to cur (args are also the call's)
 *   DEFVAL      (inst)    Q .  cur := the definition A0 as a code obj
 *   RES         u::name   Q .  the instruction name of the resource / type at a uri
 */
#ifndef HYB_MMADT_OPCODES_H
#define HYB_MMADT_OPCODES_H

#define MM_OPCODES(X)                                                                              \
        X(K, "const", 0, 0)                                                                        \
        X(ID, "_", 0, 0)                                                                           \
        X(URI, "uri", 0, 0)                                                                        \
        X(LST, "lst", 1, 0)                                                                        \
        X(REC, "rec", 1, 0)                                                                        \
        X(STREAM, "objs", 1, 0)                                                                    \
        X(RANGE, "range", 0, 0)                                                                    \
        X(SPLICE, "splice", 1, 0)                                                                  \
        X(ARITH, "arith", 0, 0)                                                                    \
        X(NEG, "neg", 0, 0)                                                                        \
        X(CMP, "cmp", 0, 0)                                                                        \
        X(ISCMP, "is", 0, 0)                                                                       \
        X(IS, "is", 0, 0)                                                                          \
        X(NOT, "not", 0, 0)                                                                        \
        X(AND, "and", 0, 0)                                                                        \
        X(OR, "or", 0, 0)                                                                          \
        X(ISA, "isa", 1, 0)                                                                        \
        X(MATCH, "match", 1, 0)                                                                    \
        X(TYPE, "type", 0, 0)                                                                      \
        X(AS, "as", 1, 0)                                                                          \
        X(TYPED, "typed", 1, 0)                                                                    \
        X(COUNT, "count", 0, 1)                                                                    \
        X(SUM, "sum", 0, 1)                                                                        \
        X(PROD, "prod", 0, 1)                                                                      \
        X(BARRIER, "barrier", 1, 1)                                                                \
        X(MERGE, "merge", 0, 0)                                                                    \
        X(START, "start", 0, 0)                                                                    \
        X(MAP, "map", 0, 0)                                                                        \
        X(END, "end", 0, 0)                                                                        \
        X(ELSE, "else", 0, 0)                                                                      \
        X(OPTION, "option", 1, 0)                                                                  \
        X(REPEAT, "repeat", 1, 0)                                                                  \
        X(GET, "get", 0, 0)                                                                        \
        X(PRINT, "print", 0, 0)                                                                    \
        X(SHIFT, "lshift", 0, 0)                                                                   \
        X(FROM, "from", 0, 0)                                                                      \
        X(TO, "to", 0, 0)                                                                          \
        X(REF, "ref", 0, 0)                                                                        \
        X(REFOP, "ref_op", 0, 0)                                                                   \
        X(AT, "at", 0, 0)                                                                          \
        X(BLOCK, "block", 1, 0)                                                                    \
        X(LIFT, "lift", 1, 0)                                                                      \
        X(DROP, "drop", 0, 0)                                                                      \
        X(SPLIT, "split", 1, 0)                                                                    \
        X(CHOOSE, "choose", 1, 0)                                                                  \
        X(CHAIN, "chain", 1, 0)                                                                    \
        X(EACH, "each", 1, 0)                                                                      \
        X(WITHIN, "within", 1, 0)                                                                  \
        X(CALL, "call", 1, 0)                                                                      \
        X(DEF, "def", 1, 0)                                                                        \
        X(DEFVAL, "defval", 1, 0)                                                                  \
        X(RES, "res", 1, 0)

enum {
#define MM_X_OP(op, name, q, b) OP_##op,
        MM_OPCODES(MM_X_OP)
#undef MM_X_OP
                OP__MAX
};

/* ARITH aux */
enum { MM_PLUS = 0, MM_MINUS, MM_MULT, MM_DIV, MM_MOD };
/* CMP / ISCMP aux */
enum { MM_EQ = 0, MM_NEQ, MM_GT, MM_GTE, MM_LT, MM_LTE };

#endif
