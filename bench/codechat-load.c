/* SPDX-License-Identifier: GPL-3.0-or-later */
/*
 * codechat-load: a load generator for codechatd.
 *
 * One thread, epoll, non-blocking TCP sockets and its own client side of RFC 6455, so that the
 * generator costs as little CPU per delivered message as possible and the daemon is what gets
 * measured.  It speaks the codechat protocol (PROTOCOL.md): hello, join, then say.  Every text it
 * sends is "lg SENDER SEQ SEND_NS"; receivers find that text in each message with a substring
 * scan (no JSON parser) to compute latency, loss, duplicates and reordering per sender.
 *
 * Scenarios: fanout, latency and idle; see bench/README.md.  A one-line summary goes to stderr
 * and one JSON object to stdout.  Every loop has a time bound.
 */
#define _GNU_SOURCE

#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define NS_PER_S	1000000000LL
#define READ_BUF_SIZE	(4u << 20)
#define MAX_FRAME	(READ_BUF_SIZE - 1024)
#define MAX_HTTP_HEADER 16384
#define HIST_SUB_BITS	7
#define HIST_HALF	(1 << (HIST_SUB_BITS - 1))
#define HIST_BUCKETS	(64 * HIST_HALF + 2 * HIST_HALF)
#define MAX_TALLY	32
#define DRAIN_QUIET_NS	(100 * 1000000LL)
#define WS_KEY		"dGhlIHNhbXBsZSBub25jZQ=="

enum scenario {
	SC_FANOUT,
	SC_LATENCY,
	SC_IDLE,
};

enum conn_state {
	CS_FREE,
	CS_CONNECTING,
	CS_UPGRADING,
	CS_HELLO,
	CS_JOIN,
	CS_READY,
	CS_DEAD,
};

enum phase {
	PH_CONNECT,
	PH_RUN,
	PH_DRAIN,
	PH_HOLD,
	PH_DONE,
};

/* what one receiver has seen of one sender */
struct track {
	int64_t last;	/* highest seq seen, -1 for none */
	uint32_t ngaps; /* seqs below last not yet seen */
	uint32_t capgaps;
	int64_t *gaps; /* (owned) */
};

/* one message of one sender */
struct msg {
	int64_t send_ns;
	int32_t remaining; /* receivers that have still to get it */
	uint8_t refused;
	uint8_t in_window;
};

struct sender {
	struct msg *msgs; /* (owned) indexed by seq */
	int64_t nmsgs;
	int64_t capmsgs;
	int inflight;
};

#define MAX_SERVERS 16

struct server {
	struct sockaddr_in addr;
	char host[96];
	char path[256];
};

struct conn {
	int fd;
	int index; /* N of the nick load-N; -1 for the probe */
	enum conn_state state;
	bool out_armed;
	uint32_t mask;
	int64_t started_ns;
	uint8_t *wbuf; /* (owned) bytes not yet written */
	size_t wlen;
	size_t wcap;
	uint8_t *rbuf; /* (owned) a partial frame or header kept between reads */
	size_t rlen;
	size_t rcap;
	uint8_t *frag; /* (owned) a fragmented text message being assembled */
	size_t fraglen;
	size_t fragcap;
	bool in_frag;
	struct track *tracks; /* (owned) one per sender, once ready */
	char room[40];
};

struct tally {
	char name[64];
	long count;
};

struct tallies {
	struct tally t[MAX_TALLY];
	int n;
};

struct hist {
	uint64_t b[HIST_BUCKETS];
	uint64_t count;
	int64_t max;
	double sum;
};

static struct {
	/* options */
	enum scenario scenario;
	/* the servers: client N connects to server N % nservers (several
	 * codechatd on one Redis), the probe to the first */
	struct server servers[MAX_SERVERS];
	int nservers;
	bool default_server;
	int clients;
	int senders;
	int window;
	double warmup_s;
	double duration_s;
	double rate;
	int idle_conns;
	int concurrency;
	double hold_s;
	double drain_s;
	double connect_timeout_s;
	double handshake_timeout_s;
	int pid;
	int per_src;
	bool probe;
	char prefix[32];
	char room[40];
	bool verbose;

	/* state */
	int epfd;
	struct conn *conns; /* (owned) nconns + 1, the last one is the probe */
	int nconns;
	int next_start;
	int pending;
	int ready;
	int failed;
	struct sender *snd; /* (owned) */
	int nsnd;
	uint8_t *rb; /* (owned) shared read buffer */
	enum phase phase;
	int64_t t0;
	int64_t t_start;
	int64_t t_end;
	int64_t last_rx;
	int64_t outstanding;
	int64_t next_k; /* latency: next scheduled send */

	/* results */
	int64_t sent, sent_win, refused, refused_win;
	int64_t deliveries, deliveries_win;
	int64_t dup, reordered, lost;
	int64_t disconnects;
	int64_t other_frames;
	int64_t send_lag_max;
	int64_t connect_ns;
	double probe_ms;
	const char *probe_error;
	long rss_before, rss_held;
	double srv_cpu, gen_cpu;
	struct tallies fail_reasons, errors, close_codes;
	struct hist lat;
	volatile sig_atomic_t stop;
} G;

static int64_t
now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * NS_PER_S + ts.tv_nsec;
}

static void
die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));

static void
die(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	fputs("codechat-load: ", stderr);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
	exit(2);
}

static void *
xrealloc(void *p, size_t n)
{
	void *r = realloc(p, n ? n : 1);
	if (r == NULL)
		die("out of memory");
	return r;
}

static void
tally_add(struct tallies *t, const char *name, long n)
{
	for (int i = 0; i < t->n; i++) {
		if (strcmp(t->t[i].name, name) == 0) {
			t->t[i].count += n;
			return;
		}
	}
	if (t->n == MAX_TALLY) {
		/* bounded: the rest is lumped together */
		name = "other";
		for (int i = 0; i < t->n; i++) {
			if (strcmp(t->t[i].name, name) == 0) {
				t->t[i].count += n;
				return;
			}
		}
		t->n--;
	}
	snprintf(t->t[t->n].name, sizeof(t->t[t->n].name), "%s", name);
	t->t[t->n].count = n;
	t->n++;
}

/* log-linear histogram: 64 sub-buckets per power of two, about 1.5% precision */
static int
hist_index(int64_t v)
{
	int msb, e;
	if (v < 0)
		v = 0;
	if (v < 2 * HIST_HALF)
		return (int)v;
	msb = 63 - __builtin_clzll((unsigned long long)v);
	e = msb - (HIST_SUB_BITS - 1);
	return e * HIST_HALF + (int)(v >> e);
}

static double
hist_value(int idx)
{
	int e;
	if (idx < 2 * HIST_HALF)
		return idx;
	e = idx / HIST_HALF - 1;
	/* the middle of the bucket */
	return ((double)(idx - e * HIST_HALF) + 0.5) * (double)(1LL << e);
}

static void
hist_add(struct hist *h, int64_t v)
{
	h->b[hist_index(v)]++;
	h->count++;
	h->sum += (double)v;
	if (v > h->max)
		h->max = v;
}

static double
hist_quantile_ms(const struct hist *h, double q)
{
	uint64_t want, acc = 0;
	if (h->count == 0)
		return 0;
	want = (uint64_t)(q * (double)h->count);
	if (want < 1)
		want = 1;
	for (int i = 0; i < HIST_BUCKETS; i++) {
		acc += h->b[i];
		if (acc >= want) {
			double v = hist_value(i);
			if (v > (double)h->max)
				v = (double)h->max;
			return v / 1e6;
		}
	}
	return (double)h->max / 1e6;
}

/* ---- /proc ---- */

static long
proc_rss_kib(int pid)
{
	char path[64], line[256];
	long kib = -1;
	FILE *f;
	snprintf(path, sizeof(path), "/proc/%d/status", pid);
	f = fopen(path, "r");
	if (f == NULL)
		return -1;
	while (fgets(line, sizeof(line), f) != NULL) {
		if (strncmp(line, "VmRSS:", 6) == 0) {
			kib = strtol(line + 6, NULL, 10);
			break;
		}
	}
	fclose(f);
	return kib;
}

/* utime + stime of a process, in seconds; -1 when it cannot be read */
static double
proc_cpu_s(int pid)
{
	char path[64], buf[1024];
	unsigned long long ut = 0, st = 0;
	size_t n;
	char *p;
	FILE *f;
	snprintf(path, sizeof(path), "/proc/%d/stat", pid);
	f = fopen(path, "r");
	if (f == NULL)
		return -1;
	n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = '\0';
	/* the command name may hold spaces and parentheses: skip past the last ')' */
	p = strrchr(buf, ')');
	if (p == NULL)
		return -1;
	/* fields after it start at 3 (state); utime is 14, stime 15 */
	if (sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &ut, &st) != 2)
		return -1;
	return (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
}

static double
self_cpu_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* the server of a connection: clients spread over the servers in turn */
static struct server *
conn_server(const struct conn *c)
{
	return &G.servers[c->index < 0 ? 0 : c->index % G.nservers];
}

/* ---- connections: output ---- */

static void
conn_arm(struct conn *c, bool out)
{
	struct epoll_event ev = {.events = EPOLLIN | (out ? EPOLLOUT : 0), .data.ptr = c};
	if (c->out_armed == out)
		return;
	c->out_armed = out;
	epoll_ctl(G.epfd, EPOLL_CTL_MOD, c->fd, &ev);
}

static void
conn_dead(struct conn *c, int close_code, const char *reason);

static void
conn_flush(struct conn *c)
{
	size_t off = 0;
	while (off < c->wlen) {
		ssize_t n = send(c->fd, c->wbuf + off, c->wlen - off, MSG_NOSIGNAL);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				break;
			conn_dead(c, 1006, "write error");
			return;
		}
		off += (size_t)n;
	}
	if (off > 0) {
		memmove(c->wbuf, c->wbuf + off, c->wlen - off);
		c->wlen -= off;
	}
	conn_arm(c, c->wlen > 0);
}

static void
conn_queue(struct conn *c, const void *data, size_t len)
{
	if (c->wlen + len > c->wcap) {
		c->wcap = (c->wlen + len) * 2 + 256;
		c->wbuf = xrealloc(c->wbuf, c->wcap);
	}
	memcpy(c->wbuf + c->wlen, data, len);
	c->wlen += len;
}

/* queue one masked client frame */
static void
ws_queue_frame(struct conn *c, int opcode, const void *payload, size_t len)
{
	uint8_t hdr[14];
	size_t h = 0;
	uint8_t mk[4];
	const uint8_t *p = payload;
	size_t start;

	/* a cheap xorshift: the key only has to vary, not to be secret, for a benchmark */
	c->mask ^= c->mask << 13;
	c->mask ^= c->mask >> 17;
	c->mask ^= c->mask << 5;
	memcpy(mk, &c->mask, 4);

	hdr[h++] = (uint8_t)(0x80 | opcode);
	if (len < 126) {
		hdr[h++] = (uint8_t)(0x80 | len);
	} else if (len < 65536) {
		hdr[h++] = 0x80 | 126;
		hdr[h++] = (uint8_t)(len >> 8);
		hdr[h++] = (uint8_t)len;
	} else {
		hdr[h++] = 0x80 | 127;
		for (int i = 7; i >= 0; i--)
			hdr[h++] = (uint8_t)((uint64_t)len >> (8 * i));
	}
	memcpy(hdr + h, mk, 4);
	h += 4;
	conn_queue(c, hdr, h);
	start = c->wlen;
	conn_queue(c, p, len);
	for (size_t i = 0; i < len; i++)
		c->wbuf[start + i] ^= mk[i & 3];
}

static void
ws_send_text(struct conn *c, const char *text, size_t len)
{
	ws_queue_frame(c, 0x1, text, len);
	conn_flush(c);
}

/* ---- senders ---- */

static struct msg *
sender_new_msg(struct sender *s, int64_t *seq)
{
	if (s->nmsgs == s->capmsgs) {
		s->capmsgs = s->capmsgs ? s->capmsgs * 2 : 1024;
		s->msgs = xrealloc(s->msgs, (size_t)s->capmsgs * sizeof(struct msg));
	}
	*seq = s->nmsgs;
	return &s->msgs[s->nmsgs++];
}

/* queue one say from sender c; the caller flushes */
static void
send_say(struct conn *c, int64_t now)
{
	struct sender *s = &G.snd[c->index];
	char buf[512];
	int64_t seq;
	struct msg *m = sender_new_msg(s, &seq);
	int n;

	m->send_ns = now;
	m->remaining = G.ready;
	m->refused = 0;
	m->in_window = now >= G.t_start && now < G.t_end;
	s->inflight++;
	G.outstanding++;
	G.sent++;
	if (m->in_window)
		G.sent_win++;
	n = snprintf(buf,
		     sizeof(buf),
		     "{\"type\":\"say\",\"room\":\"%s\",\"text\":\"lg %d %" PRId64 " %" PRId64
		     "\",\"ref\":\"%" PRId64 "\"}",
		     c->room,
		     c->index,
		     seq,
		     now,
		     seq);
	ws_queue_frame(c, 0x1, buf, (size_t)n);
}

static bool
sending(int64_t now)
{
	return G.phase == PH_RUN && now < G.t_end && !G.stop;
}

/* fanout: keep the sender's window full */
static void
fanout_fill(struct conn *c, int64_t now)
{
	struct sender *s = &G.snd[c->index];
	bool any = false;
	if (c->state != CS_READY || !sending(now))
		return;
	while (s->inflight < G.window) {
		send_say(c, now);
		any = true;
	}
	if (any)
		conn_flush(c);
}

static void
msg_done(int sender_idx, struct msg *m, int64_t now)
{
	struct sender *s = &G.snd[sender_idx];
	(void)m;
	s->inflight--;
	G.outstanding--;
	if (G.scenario == SC_FANOUT)
		fanout_fill(&G.conns[sender_idx], now);
}

/* ---- receiving ---- */

static void
track_add_gap(struct track *t, int64_t seq)
{
	if (t->ngaps == t->capgaps) {
		t->capgaps = t->capgaps ? t->capgaps * 2 : 16;
		t->gaps = xrealloc(t->gaps, t->capgaps * sizeof(int64_t));
	}
	t->gaps[t->ngaps++] = seq;
}

static bool
track_take_gap(struct track *t, int64_t seq)
{
	for (uint32_t i = 0; i < t->ngaps; i++) {
		if (t->gaps[i] == seq) {
			t->gaps[i] = t->gaps[--t->ngaps];
			return true;
		}
	}
	return false;
}

static bool
parse_i64(const char **pp, const char *end, int64_t *out)
{
	const char *p = *pp;
	int64_t v = 0;
	if (p >= end || *p < '0' || *p > '9')
		return false;
	while (p < end && *p >= '0' && *p <= '9')
		v = v * 10 + (*p++ - '0');
	*pp = p;
	*out = v;
	return true;
}

/* find needle, which starts with '"', in p: hop from quote to quote with memchr, which is much
 * cheaper than memmem for the short needles and short frames here */
static const char *
find_quoted(const char *p, size_t n, const char *needle, size_t nl)
{
	const char *end = p + n, *q = p;
	while (q + nl <= end) {
		q = memchr(q, '"', (size_t)(end - q) - nl + 1);
		if (q == NULL)
			return NULL;
		if (q[1] == needle[1] && memcmp(q, needle, nl) == 0)
			return q;
		q++;
	}
	return NULL;
}

/* the same from the end: in codechatd's messages the text is the last field but "ref" */
static const char *
find_quoted_rev(const char *p, size_t n, const char *needle, size_t nl)
{
	if (n < nl)
		return NULL;
	for (const char *q = p + n - nl; q >= p; q--) {
		if (*q == '"' && q[1] == needle[1] && memcmp(q, needle, nl) == 0)
			return q;
	}
	return NULL;
}

static void
on_message(struct conn *c, const char *p, size_t n, int64_t now)
{
	static const char needle[] = "\"text\":\"lg ";
	const char *q = find_quoted_rev(p, n, needle, sizeof(needle) - 1);
	const char *end = p + n;
	int64_t sidx, seq, sent_ns;
	struct sender *s;
	struct track *t;
	struct msg *m;

	if (q == NULL) {
		G.other_frames++;
		return;
	}
	q += sizeof(needle) - 1;
	if (!parse_i64(&q, end, &sidx) || q >= end || *q++ != ' ' || !parse_i64(&q, end, &seq) ||
	    q >= end || *q++ != ' ' || !parse_i64(&q, end, &sent_ns)) {
		G.other_frames++;
		return;
	}
	if (sidx >= G.nsnd || seq >= G.snd[sidx].nmsgs || c->tracks == NULL) {
		G.other_frames++;
		return;
	}
	G.deliveries++;
	if (now >= G.t_start && now < G.t_end)
		G.deliveries_win++;
	G.last_rx = now;
	s = &G.snd[sidx];
	t = &c->tracks[sidx];
	if (seq == t->last + 1) {
		t->last = seq;
	} else if (seq > t->last + 1) {
		for (int64_t g = t->last + 1; g < seq; g++)
			track_add_gap(t, g);
		t->last = seq;
	} else if (track_take_gap(t, seq)) {
		G.reordered++;
	} else {
		G.dup++;
		return;
	}
	m = &s->msgs[seq];
	if (m->in_window)
		hist_add(&G.lat, now - m->send_ns);
	if (!m->refused && m->remaining > 0 && --m->remaining == 0)
		msg_done((int)sidx, m, now);
}

static void
json_str_field(const char *p, size_t n, const char *key, char *out, size_t outlen)
{
	char needle[48];
	int kl = snprintf(needle, sizeof(needle), "\"%s\":\"", key);
	const char *q = find_quoted(p, n, needle, (size_t)kl);
	size_t i = 0;
	out[0] = '\0';
	if (q == NULL)
		return;
	q += kl;
	while (q < p + n && *q != '"' && i + 1 < outlen)
		out[i++] = *q++;
	out[i] = '\0';
}

static void
on_error(struct conn *c, const char *p, size_t n, int64_t now)
{
	char code[48], ref[80];
	const char *r;
	int64_t seq;

	json_str_field(p, n, "code", code, sizeof(code));
	tally_add(&G.errors, code[0] ? code : "unknown", 1);
	json_str_field(p, n, "ref", ref, sizeof(ref));
	r = ref;
	if (c->index < 0 || c->index >= G.nsnd || !parse_i64(&r, ref + strlen(ref), &seq))
		return;
	if (seq < G.snd[c->index].nmsgs) {
		struct msg *m = &G.snd[c->index].msgs[seq];
		if (m->refused)
			return;
		m->refused = 1;
		G.refused++;
		if (m->in_window)
			G.refused_win++;
		if (m->remaining > 0) {
			m->remaining = 0;
			msg_done(c->index, m, now);
		}
	}
}

static void
conn_ready(struct conn *c)
{
	c->state = CS_READY;
	if (c->index < 0)
		return;
	G.pending--;
	G.ready++;
	if (G.nsnd > 0) {
		c->tracks = calloc((size_t)G.nsnd, sizeof(struct track));
		if (c->tracks == NULL)
			die("out of memory");
		for (int i = 0; i < G.nsnd; i++)
			c->tracks[i].last = -1;
	}
}

static void
on_text(struct conn *c, const char *p, size_t n, int64_t now)
{
	static const char tneedle[] = "\"type\":\"";
	const char *t = n > sizeof(tneedle) && memcmp(p + 1, tneedle, sizeof(tneedle) - 1) == 0
			    ? p + 1
			    : find_quoted(p, n, tneedle, sizeof(tneedle) - 1);
	size_t left;
	char buf[256];

	if (t == NULL) {
		G.other_frames++;
		return;
	}
	t += sizeof(tneedle) - 1;
	left = (size_t)(p + n - t);
#define IS(word) (left > sizeof(word) - 1 && memcmp(t, word "\"", sizeof(word)) == 0)
	if (c->state == CS_READY) {
		if (IS("message"))
			on_message(c, p, n, now);
		else if (IS("error"))
			on_error(c, p, n, now);
		else
			G.other_frames++;
		return;
	}
	if (IS("error")) {
		char code[48], reason[64];
		json_str_field(p, n, "code", code, sizeof(code));
		snprintf(reason, sizeof(reason), "error %s", code);
		conn_dead(c, 0, reason);
		return;
	}
	if (c->state == CS_HELLO && IS("welcome")) {
		if (c->index < 0) {
			/* the probe: its round trip is all we want */
			G.probe_ms = (double)(now - c->started_ns) / 1e6;
			c->state = CS_READY;
			conn_dead(c, 0, NULL);
			return;
		}
		n = (size_t)
		    snprintf(buf, sizeof(buf), "{\"type\":\"join\",\"room\":\"%s\"}", c->room);
		c->state = CS_JOIN;
		ws_send_text(c, buf, n);
	} else if (c->state == CS_JOIN && IS("joined")) {
		conn_ready(c);
	}
#undef IS
}

static void
conn_start_hello(struct conn *c)
{
	char buf[128];
	int n;
	c->state = CS_HELLO;
	if (c->index < 0)
		n = snprintf(buf,
			     sizeof(buf),
			     "{\"type\":\"hello\",\"nick\":\"%s-probe\"}",
			     G.prefix);
	else
		n = snprintf(buf,
			     sizeof(buf),
			     "{\"type\":\"hello\",\"nick\":\"%s-%d\"}",
			     G.prefix,
			     c->index);
	ws_send_text(c, buf, (size_t)n);
}

/* parse as many whole frames as buf holds; returns the bytes used */
static size_t
ws_parse(struct conn *c, uint8_t *buf, size_t len, int64_t now)
{
	size_t pos = 0;
	while (c->state != CS_DEAD && c->state != CS_FREE) {
		uint8_t *f = buf + pos;
		size_t avail = len - pos, h = 2;
		uint64_t plen;
		int opcode;
		bool fin, masked;
		uint8_t *pl;

		if (avail < 2)
			break;
		fin = f[0] & 0x80;
		opcode = f[0] & 0x0f;
		masked = f[1] & 0x80;
		plen = f[1] & 0x7f;
		if (plen == 126) {
			if (avail < 4)
				break;
			plen = ((uint64_t)f[2] << 8) | f[3];
			h = 4;
		} else if (plen == 127) {
			if (avail < 10)
				break;
			plen = 0;
			for (int i = 0; i < 8; i++)
				plen = (plen << 8) | f[2 + i];
			h = 10;
		}
		if (masked)
			h += 4;
		if (plen > MAX_FRAME) {
			conn_dead(c, 1009, "frame too big");
			break;
		}
		if (avail < h + plen)
			break;
		pl = f + h;
		if (masked) {
			for (uint64_t i = 0; i < plen; i++)
				pl[i] ^= f[h - 4 + (i & 3)];
		}
		pos += h + plen;
		switch (opcode) {
		case 0x1:
			if (fin) {
				on_text(c, (const char *)pl, plen, now);
				break;
			}
			c->in_frag = true;
			c->fraglen = 0;
			/* fall through */
		case 0x0:
			if (!c->in_frag) {
				conn_dead(c, 1002, "stray continuation frame");
				break;
			}
			if (c->fraglen + plen > MAX_FRAME) {
				conn_dead(c, 1009, "message too big");
				break;
			}
			if (c->fraglen + plen > c->fragcap) {
				c->fragcap = (c->fraglen + plen) * 2;
				c->frag = xrealloc(c->frag, c->fragcap);
			}
			memcpy(c->frag + c->fraglen, pl, plen);
			c->fraglen += plen;
			if (fin) {
				c->in_frag = false;
				on_text(c, (const char *)c->frag, c->fraglen, now);
			}
			break;
		case 0x9:
			ws_queue_frame(c, 0xA, pl, plen);
			conn_flush(c);
			break;
		case 0x8: {
			int code = plen >= 2 ? (pl[0] << 8 | pl[1]) : 1005;
			uint8_t reply[2] = {(uint8_t)(code >> 8), (uint8_t)code};
			ws_queue_frame(c, 0x8, reply, code == 1005 ? 0 : 2);
			conn_flush(c);
			conn_dead(c, code, "closed by server");
			break;
		}
		case 0xA:
			break;
		default:
			G.other_frames++;
			break;
		}
	}
	return pos;
}

static size_t
http_parse(struct conn *c, uint8_t *buf, size_t len, int64_t now)
{
	uint8_t *end = memmem(buf, len, "\r\n\r\n", 4);
	char reason[64];
	int status = 0;
	size_t used;

	if (end == NULL) {
		if (len > MAX_HTTP_HEADER)
			conn_dead(c, 0, "http header too long");
		return 0;
	}
	used = (size_t)(end - buf) + 4;
	if (len < 12 || memcmp(buf, "HTTP/1.1 ", 9) != 0 ||
	    sscanf((const char *)buf + 9, "%3d", &status) != 1 || status != 101) {
		snprintf(reason, sizeof(reason), "http %d", status);
		conn_dead(c, 0, reason);
		return used;
	}
	conn_start_hello(c);
	return used + ws_parse(c, buf + used, len - used, now);
}

static void
conn_readable(struct conn *c, int64_t now)
{
	size_t off = c->rlen, len, used;
	ssize_t n;

	if (off)
		memcpy(G.rb, c->rbuf, off);
	n = recv(c->fd, G.rb + off, READ_BUF_SIZE - off, 0);
	if (n < 0) {
		if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
			return;
		conn_dead(c, 1006, c->state == CS_READY ? "read error" : strerror(errno));
		return;
	}
	if (n == 0) {
		conn_dead(c, 1006, "eof");
		return;
	}
	len = off + (size_t)n;
	if (c->state == CS_UPGRADING)
		used = http_parse(c, G.rb, len, now);
	else
		used = ws_parse(c, G.rb, len, now);
	if (c->state == CS_DEAD || c->state == CS_FREE)
		return;
	c->rlen = len - used;
	if (c->rlen > c->rcap) {
		c->rcap = c->rlen * 2;
		c->rbuf = xrealloc(c->rbuf, c->rcap);
	}
	if (c->rlen)
		memcpy(c->rbuf, G.rb + used, c->rlen);
}

static void
conn_connected(struct conn *c)
{
	int err = 0;
	socklen_t sl = sizeof(err);
	char req[512];
	int n;

	if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &sl) < 0)
		err = errno;
	if (err != 0) {
		char reason[96];
		snprintf(reason, sizeof(reason), "connect: %s", strerror(err));
		conn_dead(c, 0, reason);
		return;
	}
	c->state = CS_UPGRADING;
	n = snprintf(req,
		     sizeof(req),
		     "GET %s HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
		     "Sec-WebSocket-Key: " WS_KEY "\r\nSec-WebSocket-Version: 13\r\n"
		     "Sec-WebSocket-Protocol: codechat.v1\r\n\r\n",
		     conn_server(c)->path,
		     conn_server(c)->host);
	conn_queue(c, req, (size_t)n);
	conn_flush(c);
}

static void
conn_dead(struct conn *c, int close_code, const char *reason)
{
	enum conn_state was = c->state;

	if (was == CS_DEAD || was == CS_FREE)
		return;
	/* first, so that nothing below (msg_done refilling windows) writes to it again */
	c->state = CS_DEAD;
	if (c->index < 0) {
		/* the probe */
		if (was != CS_READY && reason != NULL)
			G.probe_error = "failed";
	} else if (was == CS_READY) {
		if (reason != NULL) {
			char code[16];
			G.disconnects++;
			snprintf(code, sizeof(code), "%d", close_code);
			tally_add(&G.close_codes, code, 1);
			if (G.verbose)
				fprintf(stderr, "conn %d: %s (%d)\n", c->index, reason, close_code);
		}
		G.ready--;
		/* everything it has not received yet will never reach it */
		for (int s = 0; c->tracks != NULL && s < G.nsnd; s++) {
			struct track *t = &c->tracks[s];
			struct sender *sd = &G.snd[s];
			for (int64_t q = t->last + 1; q < sd->nmsgs; q++)
				if (!sd->msgs[q].refused && sd->msgs[q].remaining > 0 &&
				    --sd->msgs[q].remaining == 0)
					msg_done(s, &sd->msgs[q], now_ns());
			for (uint32_t g = 0; g < t->ngaps; g++) {
				struct msg *m = &sd->msgs[t->gaps[g]];
				if (!m->refused && m->remaining > 0 && --m->remaining == 0)
					msg_done(s, m, now_ns());
			}
		}
	} else {
		/* say at which step of the handshake it failed */
		static const char *const steps[] = {"", "connect", "upgrade", "welcome", "joined"};
		char what[160];
		snprintf(what,
			 sizeof(what),
			 "%s (waiting for %s)",
			 reason ? reason : "closed",
			 steps[was]);
		G.pending--;
		G.failed++;
		tally_add(&G.fail_reasons, what, 1);
		if (G.verbose)
			fprintf(stderr, "conn %d failed: %s\n", c->index, what);
	}
	epoll_ctl(G.epfd, EPOLL_CTL_DEL, c->fd, NULL);
	close(c->fd);
	c->fd = -1;
	free(c->wbuf);
	free(c->rbuf);
	free(c->frag);
	c->wbuf = c->rbuf = c->frag = NULL;
	c->wlen = c->wcap = c->rlen = c->rcap = c->fraglen = c->fragcap = 0;
	if (c->tracks != NULL) {
		for (int s = 0; s < G.nsnd; s++)
			free(c->tracks[s].gaps);
		free(c->tracks);
		c->tracks = NULL;
	}
}

static bool
conn_start(struct conn *c, int index, int64_t now)
{
	struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT, .data.ptr = c};
	int one = 1;
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);

	memset(c, 0, sizeof(*c));
	c->index = index;
	c->started_ns = now;
	c->mask = 0x9e3779b9u ^ (uint32_t)(index * 2654435761u) ^ (uint32_t)now;
	if (c->mask == 0)
		c->mask = 1;
	if (index >= 0 && G.scenario == SC_IDLE)
		snprintf(c->room, sizeof(c->room), "idle-%d", index / 100);
	else
		snprintf(c->room, sizeof(c->room), "%s", G.room);
	c->state = CS_CONNECTING;
	c->fd = fd;
	if (fd < 0) {
		char reason[96];
		snprintf(reason, sizeof(reason), "socket: %s", strerror(errno));
		c->state = CS_FREE;
		if (index >= 0) {
			G.failed++;
			tally_add(&G.fail_reasons, reason, 1);
		} else {
			G.probe_error = "socket failed";
		}
		return false;
	}
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (G.nconns > G.per_src) {
		/* past the ephemeral port range of one source address: 127.0.0.2, .3, ... */
		struct sockaddr_in src = {.sin_family = AF_INET};
		int slot = (index < 0 ? G.nconns : index) / G.per_src;
		src.sin_addr.s_addr = htonl(0x7f000002u + (uint32_t)slot);
		setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof(one));
		if (bind(fd, (struct sockaddr *)&src, sizeof(src)) < 0) {
			G.pending += index >= 0;
			epoll_ctl(G.epfd, EPOLL_CTL_ADD, fd, &ev);
			conn_dead(c, 0, "bind failed");
			return false;
		}
	}
	G.pending += index >= 0;
	epoll_ctl(G.epfd, EPOLL_CTL_ADD, fd, &ev);
	c->out_armed = true;
	if (connect(fd, (struct sockaddr *)&conn_server(c)->addr, sizeof(conn_server(c)->addr)) <
		0 &&
	    errno != EINPROGRESS) {
		char reason[96];
		snprintf(reason, sizeof(reason), "connect: %s", strerror(errno));
		conn_dead(c, 0, reason);
		return false;
	}
	return true;
}

static void
handle_event(struct epoll_event *ev, int64_t now)
{
	struct conn *c = ev->data.ptr;
	if (c->state == CS_DEAD || c->state == CS_FREE)
		return;
	if (c->state == CS_CONNECTING) {
		if (ev->events & (EPOLLOUT | EPOLLERR | EPOLLHUP))
			conn_connected(c);
		return;
	}
	if (ev->events & (EPOLLIN | EPOLLERR | EPOLLHUP))
		conn_readable(c, now);
	if ((ev->events & EPOLLOUT) && c->state != CS_DEAD)
		conn_flush(c);
}

/* one round of the event loop, waiting at most until deadline */
static void
poll_once(int64_t deadline)
{
	static struct epoll_event evs[1024];
	static bool have_pwait2 = true;
	int64_t now = now_ns(), wait = deadline - now;
	struct timespec ts;
	int n;

	if (wait < 0)
		wait = 0;
	if (wait > 50 * 1000000LL)
		wait = 50 * 1000000LL;
	ts.tv_sec = wait / NS_PER_S;
	ts.tv_nsec = wait % NS_PER_S;
	/* epoll_pwait2 (Linux 5.11) for sub-millisecond sleeps; epoll_wait where it is missing */
	n = have_pwait2 ? epoll_pwait2(G.epfd, evs, 1024, &ts, NULL) : -1;
	if (n < 0 && (!have_pwait2 || errno == ENOSYS)) {
		have_pwait2 = false;
		n = epoll_wait(G.epfd, evs, 1024, (int)((wait + 999999) / 1000000));
	}
	if (n < 0) {
		if (errno == EINTR)
			return;
		die("epoll_wait: %s", strerror(errno));
	}
	now = now_ns();
	for (int i = 0; i < n; i++)
		handle_event(&evs[i], now);
}

/* check handshakes that took too long */
static void
expire_handshakes(int64_t now)
{
	int64_t limit = (int64_t)(G.handshake_timeout_s * 1e9);
	for (int i = 0; i <= G.nconns; i++) {
		struct conn *c = &G.conns[i];
		if (c->state >= CS_CONNECTING && c->state < CS_READY && now - c->started_ns > limit)
			conn_dead(c, 0, "timeout");
	}
}

/* open nconns connections, concurrency at a time; returns when all are ready or failed */
static void
connect_all(void)
{
	int64_t start = now_ns(), last_check = start;
	double budget = G.connect_timeout_s > 0 ? G.connect_timeout_s : 30.0 + G.nconns / 25.0;
	int64_t deadline = start + (int64_t)(budget * 1e9);

	G.phase = PH_CONNECT;
	while (!G.stop) {
		int64_t now = now_ns();
		while (G.next_start < G.nconns && G.pending < G.concurrency) {
			int i = G.next_start++;
			conn_start(&G.conns[i], i, now);
		}
		if (G.next_start == G.nconns && G.pending == 0)
			break;
		if (now > deadline) {
			for (int i = 0; i < G.nconns; i++)
				if (G.conns[i].state >= CS_CONNECTING &&
				    G.conns[i].state < CS_READY)
					conn_dead(&G.conns[i], 0, "connect phase timeout");
			while (G.next_start < G.nconns) {
				G.next_start++;
				G.failed++;
				tally_add(&G.fail_reasons, "connect phase timeout", 1);
			}
			break;
		}
		if (now - last_check > 100 * 1000000LL) {
			expire_handshakes(now);
			last_check = now;
		}
		poll_once(now + 10 * 1000000LL);
	}
	G.connect_ns = now_ns() - start;
}

static void
drain(void)
{
	int64_t start = now_ns();
	G.phase = PH_DRAIN;
	if (G.last_rx < start)
		G.last_rx = start;
	for (;;) {
		int64_t now = now_ns();
		if (now - start > (int64_t)(G.drain_s * 1e9) || G.stop)
			break;
		if (G.outstanding == 0 && now - G.last_rx > DRAIN_QUIET_NS)
			break;
		poll_once(now + 10 * 1000000LL);
	}
}

static void
count_lost(void)
{
	/* what a still connected receiver never got, of what the server accepted */
	for (int i = 0; i < G.nconns; i++) {
		struct conn *c = &G.conns[i];
		if (c->state != CS_READY || c->tracks == NULL)
			continue;
		for (int s = 0; s < G.nsnd; s++) {
			struct track *t = &c->tracks[s];
			struct sender *sd = &G.snd[s];
			for (uint32_t g = 0; g < t->ngaps; g++)
				G.lost += !sd->msgs[t->gaps[g]].refused;
			for (int64_t q = t->last + 1; q < sd->nmsgs; q++)
				G.lost += !sd->msgs[q].refused;
		}
	}
}

static void
run_traffic(void)
{
	double cpu0 = 0, gcpu0;
	int64_t interval = 0;

	G.nsnd = G.scenario == SC_FANOUT ? G.senders : G.clients;
	G.snd = calloc((size_t)G.nsnd, sizeof(struct sender));
	if (G.snd == NULL)
		die("out of memory");
	connect_all();
	if (G.ready == 0)
		return;
	G.phase = PH_RUN;
	G.t0 = now_ns();
	G.t_start = G.t0 + (int64_t)(G.warmup_s * 1e9);
	G.t_end = G.t_start + (int64_t)(G.duration_s * 1e9);
	if (G.scenario == SC_FANOUT) {
		for (int i = 0; i < G.nsnd; i++)
			fanout_fill(&G.conns[i], G.t0);
	} else {
		interval = (int64_t)(1e9 / G.rate);
		if (interval < 1)
			interval = 1;
	}
	gcpu0 = self_cpu_s();
	{
		bool window_started = false;
		for (;;) {
			int64_t now = now_ns(), next = now + 50 * 1000000LL;
			if (!window_started && now >= G.t_start) {
				window_started = true;
				if (G.pid > 0)
					cpu0 = proc_cpu_s(G.pid);
				gcpu0 = self_cpu_s();
			}
			if (now >= G.t_end || G.stop)
				break;
			if (G.scenario == SC_LATENCY) {
				int64_t due;
				while ((due = G.t0 + G.next_k * interval) <= now) {
					struct conn *c = &G.conns[G.next_k % G.nsnd];
					if (now >= G.t_start && now - due > G.send_lag_max)
						G.send_lag_max = now - due;
					G.next_k++;
					if (c->state == CS_READY) {
						send_say(c, now_ns());
						conn_flush(c);
					}
				}
				next = due;
			}
			if (next > G.t_end)
				next = G.t_end;
			if (!window_started && next > G.t_start)
				next = G.t_start;
			poll_once(next);
		}
	}
	if (G.pid > 0 && cpu0 >= 0) {
		double cpu1 = proc_cpu_s(G.pid);
		G.srv_cpu = cpu1 >= 0 ? 100.0 * (cpu1 - cpu0) / G.duration_s : -1;
	}
	G.gen_cpu = 100.0 * (self_cpu_s() - gcpu0) / G.duration_s;
	drain();
	count_lost();
}

static void
run_probe(void)
{
	struct conn *c = &G.conns[G.nconns];
	int64_t start = now_ns();
	G.probe_ms = -1;
	if (!conn_start(c, -1, start))
		return;
	while (c->state != CS_DEAD && c->state != CS_FREE && !G.stop) {
		int64_t now = now_ns();
		if (now - start > 10 * NS_PER_S) {
			G.probe_error = "timeout";
			conn_dead(c, 0, NULL);
			break;
		}
		poll_once(now + 10 * 1000000LL);
	}
}

static void
run_idle(void)
{
	int64_t start, hold_end;
	double cpu0 = -1;
	if (G.pid > 0)
		G.rss_before = proc_rss_kib(G.pid);
	connect_all();
	G.phase = PH_HOLD;
	start = now_ns();
	hold_end = start + (int64_t)(G.hold_s * 1e9);
	if (G.pid > 0)
		cpu0 = proc_cpu_s(G.pid);
	/* let the joins' presence traffic settle before the probe */
	while (now_ns() < start + (hold_end - start) / 2 && !G.stop)
		poll_once(start + (hold_end - start) / 2);
	if (G.probe)
		run_probe();
	while (now_ns() < hold_end && !G.stop)
		poll_once(hold_end);
	if (G.pid > 0) {
		G.rss_held = proc_rss_kib(G.pid);
		if (cpu0 >= 0)
			G.srv_cpu =
			    100.0 * (proc_cpu_s(G.pid) - cpu0) / ((double)(now_ns() - start) / 1e9);
	}
}

/* ---- output ---- */

static void
json_tallies(const char *name, const struct tallies *t)
{
	printf(",\"%s\":{", name);
	for (int i = 0; i < t->n; i++) {
		printf("%s\"", i ? "," : "");
		for (const char *p = t->t[i].name; *p; p++) {
			if (*p == '"' || *p == '\\')
				putchar('\\');
			putchar((unsigned char)*p < 0x20 ? '?' : *p);
		}
		printf("\":%ld", t->t[i].count);
	}
	printf("}");
}

static const char *
scenario_name(void)
{
	return G.scenario == SC_FANOUT ? "fanout" : G.scenario == SC_LATENCY ? "latency" : "idle";
}

static void
report(void)
{
	double secs = G.duration_s > 0 ? G.duration_s : 1;
	double sent_ps = (double)(G.sent_win - G.refused_win) / secs;
	double deliv_ps = (double)G.deliveries_win / secs;
	double conn_s = (double)G.connect_ns / 1e9;
	int ok = G.ready, req = G.nconns;
	double kib = -1;

	if (G.scenario == SC_IDLE && G.rss_before > 0 && G.rss_held > 0 && ok > 0)
		kib = (double)(G.rss_held - G.rss_before) / ok;
	printf("{\"tool\":\"codechat-load\",\"scenario\":\"%s\"", scenario_name());
	printf(",\"clients\":%d,\"senders\":%d,\"window\":%d,\"rate\":%g,\"duration_s\":%g,"
	       "\"warmup_s\":%g",
	       G.scenario == SC_IDLE ? G.idle_conns : G.clients,
	       G.scenario == SC_FANOUT	  ? G.senders
	       : G.scenario == SC_LATENCY ? G.clients
					  : 0,
	       G.scenario == SC_FANOUT ? G.window : 0,
	       G.scenario == SC_LATENCY ? G.rate : 0,
	       G.scenario == SC_IDLE ? G.hold_s : G.duration_s,
	       G.scenario == SC_IDLE ? 0 : G.warmup_s);
	/* ok: completed the handshake (some may have been dropped since); held: still open */
	printf(",\"conns_requested\":%d,\"conns_ok\":%d,\"conns_held\":%d,\"conns_failed\":%d,"
	       "\"connect_s\":%.3f,\"conns_per_s\":%.1f",
	       req,
	       ok + (int)G.disconnects,
	       ok,
	       G.failed,
	       conn_s,
	       conn_s > 0 ? (double)(ok + G.disconnects) / conn_s : 0);
	json_tallies("fail_reasons", &G.fail_reasons);
	if (G.scenario != SC_IDLE) {
		printf(",\"sent\":%" PRId64 ",\"refused\":%" PRId64 ",\"sent_window\":%" PRId64
		       ",\"refused_window\":%" PRId64 ",\"sent_per_s\":%.1f",
		       G.sent,
		       G.refused,
		       G.sent_win,
		       G.refused_win,
		       sent_ps);
		printf(",\"deliveries\":%" PRId64 ",\"deliveries_window\":%" PRId64
		       ",\"deliveries_per_s\":%.1f",
		       G.deliveries,
		       G.deliveries_win,
		       deliv_ps);
		printf(",\"lost\":%" PRId64 ",\"dup\":%" PRId64 ",\"reordered\":%" PRId64
		       ",\"in_flight_at_end\":%" PRId64,
		       G.lost,
		       G.dup,
		       G.reordered,
		       G.outstanding);
		printf(",\"lat_ms\":{\"count\":%" PRIu64
		       ",\"p50\":%.3f,\"p99\":%.3f,\"p999\":%.3f,\"max\":%.3f,\"mean\":%.3f}",
		       G.lat.count,
		       hist_quantile_ms(&G.lat, 0.50),
		       hist_quantile_ms(&G.lat, 0.99),
		       hist_quantile_ms(&G.lat, 0.999),
		       (double)G.lat.max / 1e6,
		       G.lat.count ? G.lat.sum / (double)G.lat.count / 1e6 : 0);
		printf(",\"send_lag_max_ms\":%.3f,\"gen_cpu_pct\":%.1f",
		       (double)G.send_lag_max / 1e6,
		       G.gen_cpu);
	} else {
		printf(",\"hold_s\":%g,\"rss_before_kib\":%ld,\"rss_held_kib\":%ld",
		       G.hold_s,
		       G.rss_before,
		       G.rss_held);
		if (kib >= 0)
			printf(",\"kib_per_conn\":%.2f", kib);
		else
			printf(",\"kib_per_conn\":null");
		if (G.probe && G.probe_error == NULL && G.probe_ms >= 0)
			printf(",\"probe_ms\":%.3f", G.probe_ms);
		else if (G.probe)
			printf(",\"probe_ms\":null,\"probe_error\":\"%s\"",
			       G.probe_error ? G.probe_error : "unknown");
	}
	if (G.pid > 0 && G.srv_cpu >= 0)
		printf(",\"srv_cpu_pct\":%.1f", G.srv_cpu);
	else
		printf(",\"srv_cpu_pct\":null");
	printf(",\"disconnects\":%" PRId64, G.disconnects);
	json_tallies("close_codes", &G.close_codes);
	json_tallies("errors", &G.errors);
	printf(",\"other_frames\":%" PRId64 ",\"interrupted\":%s}\n",
	       G.other_frames,
	       G.stop ? "true" : "false");
	fflush(stdout);

	if (G.scenario == SC_IDLE) {
		fprintf(stderr,
			"idle: %d/%d conns ok in %.2f s (%.0f conn/s), %" PRId64
			" disconnects, rss %ld -> %ld KiB",
			ok + (int)G.disconnects,
			req,
			conn_s,
			conn_s > 0 ? (ok + G.disconnects) / conn_s : 0,
			G.disconnects,
			G.rss_before,
			G.rss_held);
		if (kib >= 0)
			fprintf(stderr, " (%.2f KiB/conn)", kib);
		if (G.probe)
			fprintf(stderr, ", probe %.2f ms", G.probe_ms);
		fprintf(stderr, "\n");
	} else {
		fprintf(stderr,
			"%s: %.0f sent/s, %.0f deliv/s, p50 %.2f p99 %.2f p99.9 %.2f max %.2f ms, "
			"lost %" PRId64 " dup %" PRId64 " reord %" PRId64 " disc %" PRId64
			", refused %" PRId64 ", conns %d/%d, gen cpu %.0f%%",
			scenario_name(),
			sent_ps,
			deliv_ps,
			hist_quantile_ms(&G.lat, 0.50),
			hist_quantile_ms(&G.lat, 0.99),
			hist_quantile_ms(&G.lat, 0.999),
			(double)G.lat.max / 1e6,
			G.lost,
			G.dup,
			G.reordered,
			G.disconnects,
			G.refused,
			ok + (int)G.disconnects,
			req,
			G.gen_cpu);
		if (G.pid > 0)
			fprintf(stderr, ", srv cpu %.0f%%", G.srv_cpu);
		fprintf(stderr, "\n");
	}
}

/* ---- options ---- */

static void
usage(FILE *f)
{
	fputs(
	    "usage: codechat-load [flags]\n"
	    "  -url ws://IP:PORT/PATH   server (numeric IPv4; default ws://127.0.0.1:7373/v1/ws);\n"
	    "                           repeat it for several daemons on one Redis: client N\n"
	    "                           connects to server N modulo their number\n"
	    "  -scenario NAME           fanout, latency or idle (default fanout)\n"
	    "  -c N                     clients in the room (fanout, latency; default 100)\n"
	    "  -s N                     senders among them (fanout; default 10)\n"
	    "  -window N                messages in flight per sender (fanout; default 16)\n"
	    "  -rate R                  total messages per second (latency; default 2000)\n"
	    "  -t DUR                   measured time (default 10s)\n"
	    "  -warmup DUR              warm-up before it (default 1s)\n"
	    "  -n N                     connections (idle; default 5000)\n"
	    "  -k N                     concurrent handshakes (default 64)\n"
	    "  -drain DUR               after -t, wait at most this for what is in flight\n"
	    "                           (default 3s); what has not arrived by then is lost\n"
	    "  -hold DUR                how long idle connections are held (default 10s)\n"
	    "  -probe / -no-probe       idle: time one extra hello while held (default on)\n"
	    "  -per-src N               connections per source address; above it, bind to\n"
	    "                           127.0.0.2, 127.0.0.3, ... (default 20000)\n"
	    "  -pid PID                 the server's pid: CPU%, and VmRSS in idle\n"
	    "  -room NAME               room of fanout and latency (default load)\n"
	    "  -prefix P                nicks are P-N (default load)\n"
	    "  -handshake-timeout DUR   per connection, upgrade to joined (default 10s)\n"
	    "  -connect-timeout DUR     whole connect phase (default 30s + N/25 s)\n"
	    "  -v                       log failures and disconnects\n"
	    "  -help                    this text\n"
	    "DUR is seconds, or a number with ms, s or m.  JSON on stdout, summary on stderr.\n",
	    f);
}

static double
parse_dur(const char *flag, const char *v)
{
	char *end;
	double d = strtod(v, &end);
	if (end == v || d < 0)
		die("%s: bad duration '%s'", flag, v);
	if (strcmp(end, "ms") == 0)
		d /= 1000;
	else if (strcmp(end, "m") == 0)
		d *= 60;
	else if (*end != '\0' && strcmp(end, "s") != 0)
		die("%s: bad duration '%s'", flag, v);
	return d;
}

static long
parse_num(const char *flag, const char *v, long min, long max)
{
	char *end;
	long n = strtol(v, &end, 10);
	if (end == v || *end != '\0' || n < min || n > max)
		die("%s: want an integer in %ld..%ld, not '%s'", flag, min, max, v);
	return n;
}

static void
parse_url(const char *url)
{
	const char *p, *slash;
	char hostport[96], ip[64];
	unsigned port = 0;
	struct server *srv;

	/* the first -url replaces the default, the next ones add servers */
	if (G.default_server) {
		G.nservers = 0;
		G.default_server = false;
	}
	if (G.nservers == MAX_SERVERS)
		die("-url: at most %d servers", MAX_SERVERS);
	srv = &G.servers[G.nservers++];

	if (strncmp(url, "ws://", 5) != 0)
		die("-url: want ws://IP:PORT/PATH, not '%s'", url);
	p = url + 5;
	slash = strchr(p, '/');
	snprintf(hostport, sizeof(hostport), "%.*s", (int)(slash ? slash - p : (long)strlen(p)), p);
	snprintf(srv->path, sizeof(srv->path), "%s", slash ? slash : "/v1/ws");
	if (sscanf(hostport, "%63[0-9.]:%u", ip, &port) != 2 || port == 0 || port > 65535)
		die("-url: want a numeric IPv4 address and a port, not '%s'", hostport);
	memset(&srv->addr, 0, sizeof(srv->addr));
	srv->addr.sin_family = AF_INET;
	srv->addr.sin_port = htons((uint16_t)port);
	if (inet_pton(AF_INET, ip, &srv->addr.sin_addr) != 1)
		die("-url: bad address '%s'", ip);
	snprintf(srv->host, sizeof(srv->host), "%s", hostport);
}

static void
parse_args(int argc, char **argv)
{
	parse_url("ws://127.0.0.1:7373/v1/ws");
	G.default_server = true;
	G.scenario = SC_FANOUT;
	G.clients = 100;
	G.senders = 10;
	G.window = 16;
	G.rate = 2000;
	G.duration_s = 10;
	G.warmup_s = 1;
	G.idle_conns = 5000;
	G.concurrency = 64;
	G.hold_s = 10;
	G.drain_s = 3;
	G.per_src = 20000;
	G.probe = true;
	G.handshake_timeout_s = 10;
	snprintf(G.prefix, sizeof(G.prefix), "load");
	snprintf(G.room, sizeof(G.room), "load");

	for (int i = 1; i < argc; i++) {
		const char *f = argv[i];
		const char *v = i + 1 < argc ? argv[i + 1] : NULL;
		if (f[0] == '-' && f[1] == '-')
			f++;
#define FLAG(name) (strcmp(f, "-" name) == 0)
#define VAL()                                                                                      \
	({                                                                                         \
		if (v == NULL)                                                                     \
			die("%s needs a value", f);                                                \
		i++;                                                                               \
		v;                                                                                 \
	})
		if (FLAG("help") || FLAG("h")) {
			usage(stdout);
			exit(0);
		} else if (FLAG("url")) {
			parse_url(VAL());
		} else if (FLAG("scenario")) {
			const char *s = VAL();
			if (strcmp(s, "fanout") == 0)
				G.scenario = SC_FANOUT;
			else if (strcmp(s, "latency") == 0)
				G.scenario = SC_LATENCY;
			else if (strcmp(s, "idle") == 0)
				G.scenario = SC_IDLE;
			else
				die("-scenario: fanout, latency or idle, not '%s'", s);
		} else if (FLAG("c")) {
			G.clients = (int)parse_num(f, VAL(), 1, 1000000);
		} else if (FLAG("s")) {
			G.senders = (int)parse_num(f, VAL(), 1, 1000000);
		} else if (FLAG("window")) {
			G.window = (int)parse_num(f, VAL(), 1, 1000000);
		} else if (FLAG("rate")) {
			G.rate = (double)parse_num(f, VAL(), 1, 100000000);
		} else if (FLAG("t")) {
			G.duration_s = parse_dur(f, VAL());
		} else if (FLAG("warmup")) {
			G.warmup_s = parse_dur(f, VAL());
		} else if (FLAG("n")) {
			G.idle_conns = (int)parse_num(f, VAL(), 1, 10000000);
		} else if (FLAG("k")) {
			G.concurrency = (int)parse_num(f, VAL(), 1, 1000000);
		} else if (FLAG("drain")) {
			G.drain_s = parse_dur(f, VAL());
		} else if (FLAG("hold")) {
			G.hold_s = parse_dur(f, VAL());
		} else if (FLAG("probe")) {
			G.probe = true;
		} else if (FLAG("no-probe")) {
			G.probe = false;
		} else if (FLAG("per-src")) {
			G.per_src = (int)parse_num(f, VAL(), 1, 65535);
		} else if (FLAG("pid")) {
			G.pid = (int)parse_num(f, VAL(), 1, 1 << 30);
		} else if (FLAG("room")) {
			snprintf(G.room, sizeof(G.room), "%s", VAL());
		} else if (FLAG("prefix")) {
			snprintf(G.prefix, sizeof(G.prefix), "%s", VAL());
		} else if (FLAG("handshake-timeout")) {
			G.handshake_timeout_s = parse_dur(f, VAL());
		} else if (FLAG("connect-timeout")) {
			G.connect_timeout_s = parse_dur(f, VAL());
		} else if (FLAG("v")) {
			G.verbose = true;
		} else {
			usage(stderr);
			die("unknown flag '%s'", argv[i]);
		}
#undef FLAG
#undef VAL
	}
	if (G.scenario == SC_FANOUT && G.senders > G.clients)
		die("-s %d is more than -c %d", G.senders, G.clients);
	if (G.duration_s <= 0 && G.scenario != SC_IDLE)
		die("-t must be positive");
}

static void
on_signal(int sig)
{
	(void)sig;
	G.stop = 1;
}

static void
raise_nofile(rlim_t want)
{
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
		return;
	if (rl.rlim_cur >= want)
		return;
	/* the hard limit is enough; past it, only a privileged process may go */
	if (rl.rlim_max < want) {
		struct rlimit up = {want, want};
		if (setrlimit(RLIMIT_NOFILE, &up) == 0)
			return;
	}
	rl.rlim_cur = rl.rlim_max;
	setrlimit(RLIMIT_NOFILE, &rl);
}

int
main(int argc, char **argv)
{
	struct sigaction sa = {.sa_handler = on_signal};

	parse_args(argc, argv);
	signal(SIGPIPE, SIG_IGN);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);

	G.nconns = G.scenario == SC_IDLE ? G.idle_conns : G.clients;
	raise_nofile((rlim_t)G.nconns + 64);
	G.epfd = epoll_create1(EPOLL_CLOEXEC);
	if (G.epfd < 0)
		die("epoll_create1: %s", strerror(errno));
	G.rb = malloc(READ_BUF_SIZE);
	G.conns = calloc((size_t)G.nconns + 1, sizeof(struct conn));
	if (G.conns == NULL || G.rb == NULL)
		die("out of memory");
	for (int i = 0; i <= G.nconns; i++)
		G.conns[i].fd = -1;
	if (G.scenario == SC_IDLE)
		run_idle();
	else
		run_traffic();
	report();
	if (G.stop)
		return 130;
	return 0;
}
