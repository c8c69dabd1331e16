cimport cython
from cpython cimport array

@cython.locals(t=cython.double, s=Py_ssize_t, pos=Py_ssize_t, up=Py_ssize_t, parent=tuple, pt=cython.double)
cpdef void _push_msg(list heap, tuple item)

@cython.locals(last=tuple, n=Py_ssize_t, top=tuple, t=cython.double, s=Py_ssize_t, pos=Py_ssize_t, child=Py_ssize_t,
               c=tuple, ct=cython.double, r=tuple, rt=cython.double)
cpdef tuple _pop_msg(list heap)

cdef class PowChain:
    cdef public object proto, net, rng, _pyrng, env, transport, workload, mempool, tx_delay, plan, _fixed, _seq
    cdef public Py_ssize_t n, _thr50, _thr90, _mine_gen, _wake_gen, events, invs_suppressed, reorgs, max_block_bytes
    cdef public list parent, height, work, t_found, size, miner, txs, gas, limit, uncles
    cdef public dict _by_height, _miner_idx, _tx_times
    cdef public list state, n_have, t50, t90, inv_due, tip, canon, miners, _cum, shares, t_miner, _pool_work
    cdef public list _push, _miner_lat, _msgs
    cdef public double interval, _switch, _val_per_tx, _request_delay, tx_spread_s, _wake_at
    cdef public bint _mine_pending, _compact, _relay_all, _plain
    cdef public tuple _cb_mine, _cb_wake
    cdef public object _h_inv, _h_getdata, _h_block
    cdef public list _busy, _up_bps, _down_bps, _pick, _ids, _lats
    cdef public double _val_base, _val_per_byte
    cdef public Py_ssize_t _fanout

    @cython.locals(t=cython.double, nt=cython.double, delivered=Py_ssize_t, msgs=list)
    cpdef _deliver(self)

    @cython.locals(st=bytearray, due=list, wb=cython.double, suppressed=Py_ssize_t, lacking=Py_ssize_t,
                   i=Py_ssize_t, ids=array.array, lats=array.array, idv=cython.p_long, latv=cython.p_double,
                   p=Py_ssize_t, have=tuple, _=Py_ssize_t, fanout=Py_ssize_t)
    cpdef _announce(self, Py_ssize_t node, Py_ssize_t b, double now)

    @cython.locals(q=Py_ssize_t, wq=cython.double, t=cython.double, dp=cython.double)
    cdef Py_ssize_t _offer_inv(self, Py_ssize_t b, Py_ssize_t node, Py_ssize_t p, double lat, double now, double wb,
                               list due) except -1

    @cython.locals(st=bytearray, wb=cython.double, q=Py_ssize_t, wq=cython.double)
    cpdef _on_inv(self, double now, Py_ssize_t b, Py_ssize_t src, Py_ssize_t dst, double lat)

    @cython.locals(blist=list, state=list, parent=list, p=Py_ssize_t)
    cpdef _request(self, double now, Py_ssize_t b, Py_ssize_t src, Py_ssize_t dst, double lat)

    @cython.locals(size=list, nbytes=cython.double, start=cython.double, done=cython.double, delay=cython.double,
                   busy=list, rate=cython.double, down_rate=cython.double)
    cpdef _on_getdata(self, double now, list blist, Py_ssize_t up, Py_ssize_t down, double lat)

    @cython.locals(state=list, n_have=list, thr50=Py_ssize_t, thr90=Py_ssize_t, st=bytearray, k=Py_ssize_t, x=Py_ssize_t, b=Py_ssize_t,
                   q=Py_ssize_t, wq=cython.double, wb=cython.double)
    cpdef _on_block(self, double now, list blist, Py_ssize_t src, Py_ssize_t dst, double _lat)

    @cython.locals(k=Py_ssize_t)
    cpdef _got(self, Py_ssize_t b, double now)
