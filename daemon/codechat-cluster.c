/* SPDX-License-Identifier: GPL-3.0-or-later */
#define G_LOG_DOMAIN "codechat-cluster"

#include "config.h"

#include <hiredis/async.h>
#include <hiredis/hiredis.h>
#include <json-glib/json-glib.h>
#include <signal.h>
#include <string.h>

#include "codechat-cluster.h"
#include "codechat-error.h"
#include "codechat-log.h"
#include "codechat-protocol.h"
#include "codechat-store-redis.h"

/*
 * Presence and membership of several codechatd on one Redis.
 *
 * Redis holds (P = "codechat:"):
 *   P daemons                 ZSET  daemon id -> expiry, ms of Redis' own clock
 *   P online                  HASH  folded nick -> daemon id (the nick claims)
 *   P members:<room>          HASH  nick -> daemon id
 *   P daemon:<id>:nicks       SET   nicks claimed by that daemon
 *   P daemon:<id>:members     SET   "room\tnick" of that daemon's sessions
 *   P seq                     counter, one step per presence event
 *   channel P presence        {"seq","d","nick","event","room"|"rooms"}; with a
 *                             database N other than 0: P presence:N
 * The per-daemon sets are what lets any daemon remove a dead one's entries.
 * Every change is one Lua script, so it is atomic; the scripts read the
 * time from Redis (TIME), so the clocks of the machines do not matter.
 *
 * Each daemon keeps in memory its own nicks and memberships (to write them
 * again after Redis came back) and the view of the other live daemons:
 * loaded by the "snapshot" script and kept up to date by the presence
 * channel.  Events carry the counter's value: those already in a snapshot
 * are dropped, and an event changes the view (and emits ::presence) only
 * when it changes something, which is what makes a quit of a dead
 * daemon's member come out exactly once whoever reaps it.
 *
 * The hub (with --redis): claim the nick on hello and answer welcome or
 * nick-taken from the claim's callback (overloaded on an error); call
 * join/part as its sessions do, and quit when a session ends (it also
 * releases the nick).  joined.members and who are the local members and
 * codechat_cluster_dup_remote_members(); rooms counts add
 * codechat_cluster_count_remote_members() and codechat_cluster_dup_remote_rooms().
 * ::presence is delivered as a presence frame to the room's local
 * members; ::nick-lost closes the local session of that nick.
 */

#define DEFAULT_HEARTBEAT_MS 2000
#define DEFAULT_TTL_MS	     10000
#define BACKOFF_MIN_MS	     100
#define BACKOFF_MAX_MS	     5000
#define SYNC_TIMEOUT_MS	     1000

/* ------------------------------------------------------------------ */
/* the scripts */

#define LUA_PRELUDE                                                                                \
	"local P = 'codechat:'\n"                                                                  \
	"local function now_ms()\n"                                                                \
	"  local t = redis.call('TIME')\n"                                                         \
	"  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)\n"                     \
	"end\n"                                                                                    \
	"local function publish(ev)\n"                                                             \
	"  ev.seq = redis.call('INCR', P .. 'seq')\n"                                              \
	"  redis.call('PUBLISH', CH, cjson.encode(ev))\n"                                          \
	"end\n"                                                                                    \
	"local function alive(d, now)\n"                                                           \
	"  local exp = redis.call('ZSCORE', P .. 'daemons', d)\n"                                  \
	"  return exp and tonumber(exp) > now\n"                                                   \
	"end\n"                                                                                    \
	"local function split(e)\n"                                                                \
	"  local tab = string.find(e, '\\t', 1, true)\n"                                           \
	"  if not tab then return nil, nil end\n"                                                  \
	"  return string.sub(e, 1, tab - 1), string.sub(e, tab + 1)\n"                             \
	"end\n" /* removes all of daemon d; with loud, one quit per nick */                        \
	"local function reap(d, loud)\n"                                                           \
	"  local nk = P .. 'daemon:' .. d .. ':nicks'\n"                                           \
	"  local mk = P .. 'daemon:' .. d .. ':members'\n"                                         \
	"  local gone, order = {}, {}\n"                                                           \
	"  for _, e in ipairs(redis.call('SMEMBERS', mk)) do\n"                                    \
	"    local room, nick = split(e)\n"                                                        \
	"    if room then\n"                                                                       \
	"      local key = P .. 'members:' .. room\n"                                              \
	"      if redis.call('HGET', key, nick) == d then redis.call('HDEL', key, nick) end\n"     \
	"      if not gone[nick] then gone[nick] = {}; table.insert(order, nick) end\n"            \
	"      table.insert(gone[nick], room)\n"                                                   \
	"    end\n"                                                                                \
	"  end\n"                                                                                  \
	"  for _, nick in ipairs(redis.call('SMEMBERS', nk)) do\n"                                 \
	"    local fold = string.lower(nick)\n"                                                    \
	"    if redis.call('HGET', P .. 'online', fold) == d then\n"                               \
	"      redis.call('HDEL', P .. 'online', fold)\n"                                          \
	"    end\n"                                                                                \
	"    if not gone[nick] then gone[nick] = {}; table.insert(order, nick) end\n"              \
	"  end\n"                                                                                  \
	"  redis.call('DEL', nk, mk)\n"                                                            \
	"  redis.call('ZREM', P .. 'daemons', d)\n"                                                \
	"  if loud then\n"                                                                         \
	"    for _, nick in ipairs(order) do\n"                                                    \
	"      publish({d = d, nick = nick, event = 'quit', rooms = gone[nick]})\n"                \
	"    end\n"                                                                                \
	"  end\n"                                                                                  \
	"end\n"

/* ARGV: id, nick -> 1 claimed, 0 held by a live daemon, -1 we are not registered */
static const gchar lua_claim[] = LUA_PRELUDE
    "local id, nick = ARGV[1], ARGV[2]\n"
    "local now = now_ms()\n"
    "if not alive(id, now) then return -1 end\n"
    "local fold = string.lower(nick)\n"
    "local owner = redis.call('HGET', P .. 'online', fold)\n"
    "if owner and owner ~= id then\n"
    "  if alive(owner, now) then return 0 end\n"
    "  reap(owner, true)\n"
    "end\n"
    "redis.call('HSET', P .. 'online', fold, id)\n"
    "redis.call('SADD', P .. 'daemon:' .. id .. ':nicks', nick)\n"
    "publish({d = id, nick = nick, event = 'claim'})\n"
    "return 1\n";

/* ARGV: id, nick */
static const gchar lua_release[] = LUA_PRELUDE
    "local id, nick = ARGV[1], ARGV[2]\n"
    "local fold = string.lower(nick)\n"
    "if redis.call('HGET', P .. 'online', fold) == id then\n"
    "  redis.call('HDEL', P .. 'online', fold)\n"
    "end\n"
    "if redis.call('SREM', P .. 'daemon:' .. id .. ':nicks', nick) == 1 then\n"
    "  publish({d = id, nick = nick, event = 'release'})\n"
    "end\n"
    "return 1\n";

/* ARGV: id, room, nick */
static const gchar lua_join[] = LUA_PRELUDE
    "local id, room, nick = ARGV[1], ARGV[2], ARGV[3]\n"
    "redis.call('HSET', P .. 'members:' .. room, nick, id)\n"
    "local e = room .. '\\t' .. nick\n"
    "if redis.call('SADD', P .. 'daemon:' .. id .. ':members', e) == 1 then\n"
    "  publish({d = id, room = room, nick = nick, event = 'join'})\n"
    "end\n"
    "return 1\n";

/* ARGV: id, room, nick */
static const gchar lua_part[] = LUA_PRELUDE
    "local id, room, nick = ARGV[1], ARGV[2], ARGV[3]\n"
    "local key = P .. 'members:' .. room\n"
    "if redis.call('HGET', key, nick) == id then redis.call('HDEL', key, nick) end\n"
    "local e = room .. '\\t' .. nick\n"
    "if redis.call('SREM', P .. 'daemon:' .. id .. ':members', e) == 1 then\n"
    "  publish({d = id, room = room, nick = nick, event = 'part'})\n"
    "end\n"
    "return 1\n";

/* ARGV: id, nick, rooms... */
static const gchar lua_quit[] = LUA_PRELUDE
    "local id, nick = ARGV[1], ARGV[2]\n"
    "local rooms = {}\n"
    "for i = 3, #ARGV do\n"
    "  local key = P .. 'members:' .. ARGV[i]\n"
    "  if redis.call('HGET', key, nick) == id then redis.call('HDEL', key, nick) end\n"
    "  local e = ARGV[i] .. '\\t' .. nick\n"
    "  if redis.call('SREM', P .. 'daemon:' .. id .. ':members', e) == 1 then\n"
    "    table.insert(rooms, ARGV[i])\n"
    "  end\n"
    "end\n"
    "local fold = string.lower(nick)\n"
    "if redis.call('HGET', P .. 'online', fold) == id then\n"
    "  redis.call('HDEL', P .. 'online', fold)\n"
    "end\n"
    "redis.call('SREM', P .. 'daemon:' .. id .. ':nicks', nick)\n"
    "publish({d = id, nick = nick, event = 'quit', rooms = rooms})\n"
    "return 1\n";

/* ARGV: id, ttl -> 1 when this daemon was registered, 0 when it was gone;
 * reaps every daemon whose expiry passed */
static const gchar lua_heartbeat[] = LUA_PRELUDE
    "local id, ttl = ARGV[1], tonumber(ARGV[2])\n"
    "local now = now_ms()\n"
    "local present = redis.call('ZSCORE', P .. 'daemons', id)\n"
    "redis.call('ZADD', P .. 'daemons', now + ttl, id)\n"
    "for _, d in ipairs(redis.call('ZRANGEBYSCORE', P .. 'daemons', '-inf', now)) do\n"
    "  if d ~= id then reap(d, true) end\n"
    "end\n"
    "if present then return 1 end\n"
    "return 0\n";

/* ARGV: id, ttl, n, n nicks, then "room\tnick"... -> the nicks that a live
 * daemon took meanwhile; writes this daemon's state anew */
static const gchar lua_register[] = LUA_PRELUDE
    "local id, ttl, n = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])\n"
    "local now = now_ms()\n"
    "local oldn = redis.call('SMEMBERS', P .. 'daemon:' .. id .. ':nicks')\n"
    "local oldm = redis.call('SMEMBERS', P .. 'daemon:' .. id .. ':members')\n"
    "reap(id, false)\n"
    "redis.call('ZADD', P .. 'daemons', now + ttl, id)\n"
    "local lost, lostset, newn, newm = {}, {}, {}, {}\n"
    "for i = 4, 3 + n do\n"
    "  local nick = ARGV[i]\n"
    "  local fold = string.lower(nick)\n"
    "  local owner = redis.call('HGET', P .. 'online', fold)\n"
    "  if owner and owner ~= id and alive(owner, now) then\n"
    "    table.insert(lost, nick); lostset[nick] = true\n"
    "  else\n"
    "    if owner and owner ~= id then reap(owner, true) end\n"
    "    redis.call('HSET', P .. 'online', fold, id)\n"
    "    redis.call('SADD', P .. 'daemon:' .. id .. ':nicks', nick)\n"
    "    newn[nick] = true\n"
    "    publish({d = id, nick = nick, event = 'claim'})\n"
    "  end\n"
    "end\n"
    "for i = 4 + n, #ARGV do\n"
    "  local room, nick = split(ARGV[i])\n"
    "  if room and not lostset[nick] then\n"
    "    redis.call('HSET', P .. 'members:' .. room, nick, id)\n"
    "    redis.call('SADD', P .. 'daemon:' .. id .. ':members', ARGV[i])\n"
    "    newm[ARGV[i]] = true\n"
    "    publish({d = id, room = room, nick = nick, event = 'join'})\n"
    "  end\n"
    "end\n"
    /* what ended while Redis was away, but is still in it */
    "local gone, order = {}, {}\n"
    "for _, e in ipairs(oldm) do\n"
    "  local room, nick = split(e)\n"
    "  if room and not newm[e] then\n"
    "    if newn[nick] then\n"
    "      publish({d = id, room = room, nick = nick, event = 'part'})\n"
    "    else\n"
    "      if not gone[nick] then gone[nick] = {}; table.insert(order, nick) end\n"
    "      table.insert(gone[nick], room)\n"
    "    end\n"
    "  end\n"
    "end\n"
    "for _, nick in ipairs(oldn) do\n"
    "  if not newn[nick] and not gone[nick] then gone[nick] = {}; table.insert(order, nick) end\n"
    "end\n"
    "for _, nick in ipairs(order) do\n"
    "  publish({d = id, nick = nick, event = 'quit', rooms = gone[nick]})\n"
    "end\n"
    "return lost\n";

/* ARGV: id -> {seq, {daemon, {nicks}, {"room\tnick"...}}...} of the other live daemons */
static const gchar lua_snapshot[] = LUA_PRELUDE
    "local now = now_ms()\n"
    "local out = {tonumber(redis.call('GET', P .. 'seq') or 0)}\n"
    "for _, d in ipairs(redis.call('ZRANGEBYSCORE', P .. 'daemons', '(' .. now, '+inf')) do\n"
    "  if d ~= ARGV[1] then\n"
    "    table.insert(out, {d,\n"
    "      redis.call('SMEMBERS', P .. 'daemon:' .. d .. ':nicks'),\n"
    "      redis.call('SMEMBERS', P .. 'daemon:' .. d .. ':members')})\n"
    "  end\n"
    "end\n"
    "return out\n";

/* ARGV: id */
static const gchar lua_leave[] = LUA_PRELUDE "reap(ARGV[1], true)\n"
					     "return 1\n";

/* channels are not per database, unlike keys: the database is in the
 * name, and each script starts with "local CH = '<channel>'" */
#define PRESENCE_CHANNEL "codechat:presence"

/* ------------------------------------------------------------------ */

typedef enum {
	STATE_DISCONNECTED, /* waiting to reconnect */
	STATE_CONNECTING,   /* connections open, waiting for SUBSCRIBE */
	STATE_SYNCING,	    /* register and snapshot sent */
	STATE_READY,	    /* snapshot applied */
	STATE_GONE,	    /* shut down or crashed: no more Redis */
} State;

typedef struct {
	gchar *nick;	   /* (owned) */
	GHashTable *rooms; /* (owned) room name set */
	gboolean claimed;
} LocalNick;

struct _CodechatCluster {
	GObject parent_instance;

	gchar *id;	    /* (owned) */
	gchar *url;	    /* (owned) */
	gchar *unix_path;   /* (owned) (nullable) */
	gchar *host;	    /* (owned) (nullable) */
	gchar *channel;	    /* (owned) the presence channel */
	gchar *script_head; /* (owned) the Lua line that names it */
	gint port;
	gint db;
	guint heartbeat_ms;
	guint ttl_ms;

	redisAsyncContext *cmd; /* (owned) (nullable) commands */
	redisAsyncContext *sub; /* (owned) (nullable) SUBSCRIBE */
	State state;
	guint heartbeat_id; /* GSource id, 0 if none */
	guint reconnect_id; /* GSource id, 0 if none */
	guint backoff_ms;
	gboolean lost_logged; /* said that Redis went away, until it is back */

	GHashTable *local;	  /* (owned) folded nick -> LocalNick */
	GHashTable *remote_rooms; /* (owned) room -> (nick -> daemon id) */
	GHashTable *remote_nicks; /* (owned) folded nick -> daemon id */
	gint64 snapshot_seq;	  /* events up to this one are in the view */
	GPtrArray *early_events;  /* (owned) (element-type JsonNode) while syncing */
};

G_DEFINE_FINAL_TYPE(CodechatCluster, codechat_cluster, G_TYPE_OBJECT)

enum {
	PROP_0,
	PROP_URL,
	PROP_HEARTBEAT_MS,
	PROP_TTL_MS,
	PROP_READY,
	N_PROPS
};
static GParamSpec *properties[N_PROPS];

enum {
	SIGNAL_PRESENCE,
	SIGNAL_NICK_LOST,
	N_SIGNALS
};
static guint signals[N_SIGNALS];

static void
cluster_connect(CodechatCluster *self);
static void
cluster_register(CodechatCluster *self);

/* ------------------------------------------------------------------ */
/* hiredis on the GLib main loop.  Not hiredis' adapters/glib.h: its
 * dispatch goes on to redisAsyncHandleRead() after redisAsyncHandleWrite()
 * freed the context (a write error), a use after free. */

typedef struct {
	GSource source;
	redisAsyncContext *ac; /* (unowned) (nullable) NULL once hiredis let go */
	gpointer tag;	       /* (nullable) the fd's tag */
	GIOCondition events;
} RedisSource;

static void
redis_source_update(RedisSource *rs)
{
	if (rs->tag != NULL)
		g_source_modify_unix_fd((GSource *)rs, rs->tag, rs->events);
}

static void
redis_source_add_read(void *data)
{
	RedisSource *rs = data;
	rs->events |= G_IO_IN;
	redis_source_update(rs);
}

static void
redis_source_del_read(void *data)
{
	RedisSource *rs = data;
	rs->events &= ~G_IO_IN;
	redis_source_update(rs);
}

static void
redis_source_add_write(void *data)
{
	RedisSource *rs = data;
	rs->events |= G_IO_OUT;
	redis_source_update(rs);
}

static void
redis_source_del_write(void *data)
{
	RedisSource *rs = data;
	rs->events &= ~G_IO_OUT;
	redis_source_update(rs);
}

/* hiredis frees the context right after this */
static void
redis_source_cleanup(void *data)
{
	RedisSource *rs = data;
	rs->ac = NULL;
	if (rs->tag != NULL) {
		g_source_remove_unix_fd((GSource *)rs, rs->tag);
		rs->tag = NULL;
	}
	g_source_destroy((GSource *)rs);
}

static gboolean
redis_source_dispatch(GSource *source, GSourceFunc callback, gpointer user_data)
{
	RedisSource *rs = (RedisSource *)source;
	GIOCondition cond;

	if (rs->ac == NULL || rs->tag == NULL)
		return G_SOURCE_CONTINUE;
	cond = g_source_query_unix_fd(source, rs->tag);
	if (rs->ac != NULL && (cond & (G_IO_OUT | G_IO_ERR)) != 0)
		redisAsyncHandleWrite(rs->ac);
	/* a hang-up or an error is seen by reading */
	if (rs->ac != NULL && (cond & (G_IO_IN | G_IO_HUP | G_IO_ERR)) != 0)
		redisAsyncHandleRead(rs->ac);
	return G_SOURCE_CONTINUE;
}

static GSourceFuncs redis_source_funcs = {
    .dispatch = redis_source_dispatch,
};

static void
redis_source_attach(redisAsyncContext *ac)
{
	RedisSource *rs = (RedisSource *)g_source_new(&redis_source_funcs, sizeof(RedisSource));

	g_source_set_name((GSource *)rs, "codechat-redis");
	rs->ac = ac;
	rs->tag = g_source_add_unix_fd((GSource *)rs, ac->c.fd, 0);
	ac->ev.addRead = redis_source_add_read;
	ac->ev.delRead = redis_source_del_read;
	ac->ev.addWrite = redis_source_add_write;
	ac->ev.delWrite = redis_source_del_write;
	ac->ev.cleanup = redis_source_cleanup;
	ac->ev.data = rs;
	g_source_attach((GSource *)rs, g_main_context_get_thread_default());
	g_source_unref((GSource *)rs); /* the context keeps it until cleanup */
}

/* ------------------------------------------------------------------ */
/* state in memory */

static void
local_nick_free(gpointer data)
{
	LocalNick *ln = data;
	g_free(ln->nick);
	g_hash_table_unref(ln->rooms);
	g_free(ln);
}

static LocalNick *
local_nick_ensure(CodechatCluster *self, const gchar *nick)
{
	g_autofree gchar *fold = codechat_nick_fold(nick);
	LocalNick *ln = g_hash_table_lookup(self->local, fold);

	if (ln == NULL) {
		ln = g_new0(LocalNick, 1);
		ln->nick = g_strdup(nick);
		ln->rooms = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);
		g_hash_table_insert(self->local, g_steal_pointer(&fold), ln);
	}
	return ln;
}

static LocalNick *
local_nick_lookup(CodechatCluster *self, const gchar *nick)
{
	g_autofree gchar *fold = codechat_nick_fold(nick);
	return g_hash_table_lookup(self->local, fold);
}

static void
local_nick_forget_if_unused(CodechatCluster *self, LocalNick *ln)
{
	if (!ln->claimed && g_hash_table_size(ln->rooms) == 0) {
		g_autofree gchar *fold = codechat_nick_fold(ln->nick);
		g_hash_table_remove(self->local, fold);
	}
}

static GHashTable *
rooms_table_new(void)
{
	return g_hash_table_new_full(g_str_hash,
				     g_str_equal,
				     g_free,
				     (GDestroyNotify)g_hash_table_unref);
}

static GHashTable *
nicks_table_new(void)
{
	return g_hash_table_new_full(g_str_hash, g_str_equal, g_free, g_free);
}

/* TRUE when the view changed */
static gboolean
view_add(GHashTable *rooms, const gchar *room, const gchar *nick, const gchar *daemon)
{
	GHashTable *members = g_hash_table_lookup(rooms, room);
	gboolean added;

	if (members == NULL) {
		members = nicks_table_new();
		g_hash_table_insert(rooms, g_strdup(room), members);
	}
	added = !g_hash_table_contains(members, nick);
	g_hash_table_insert(members, g_strdup(nick), g_strdup(daemon));
	return added;
}

static gboolean
view_remove(GHashTable *rooms, const gchar *room, const gchar *nick)
{
	GHashTable *members = g_hash_table_lookup(rooms, room);

	if (members == NULL || !g_hash_table_remove(members, nick))
		return FALSE;
	if (g_hash_table_size(members) == 0)
		g_hash_table_remove(rooms, room);
	return TRUE;
}

static void
emit_presence(CodechatCluster *self, const gchar *room, const gchar *nick, const gchar *event)
{
	codechat_debug(CODECHAT_LOG_FIELDS(.room = room, .nick = nick),
		       "remote %s of %s in %s",
		       event,
		       nick,
		       room);
	g_signal_emit(self, signals[SIGNAL_PRESENCE], 0, room, nick, event);
}

/* one event of another daemon, from the presence channel */
static void
apply_event(CodechatCluster *self, JsonObject *ev)
{
	const gchar *d = json_object_get_string_member_with_default(ev, "d", NULL);
	const gchar *nick = json_object_get_string_member_with_default(ev, "nick", NULL);
	const gchar *event = json_object_get_string_member_with_default(ev, "event", NULL);
	const gchar *room = json_object_get_string_member_with_default(ev, "room", NULL);
	g_autofree gchar *fold = NULL;

	if (d == NULL || nick == NULL || event == NULL || g_strcmp0(d, self->id) == 0)
		return;
	fold = codechat_nick_fold(nick);
	if (g_str_equal(event, "claim")) {
		g_hash_table_insert(self->remote_nicks, g_steal_pointer(&fold), g_strdup(d));
	} else if (g_str_equal(event, "release")) {
		if (g_strcmp0(g_hash_table_lookup(self->remote_nicks, fold), d) == 0)
			g_hash_table_remove(self->remote_nicks, fold);
	} else if (g_str_equal(event, "join") && room != NULL) {
		g_hash_table_insert(self->remote_nicks, g_steal_pointer(&fold), g_strdup(d));
		if (view_add(self->remote_rooms, room, nick, d))
			emit_presence(self, room, nick, "join");
	} else if (g_str_equal(event, "part") && room != NULL) {
		if (view_remove(self->remote_rooms, room, nick))
			emit_presence(self, room, nick, "part");
	} else if (g_str_equal(event, "quit")) {
		JsonNode *rooms = json_object_get_member(ev, "rooms");
		g_autoptr(GPtrArray) left = g_ptr_array_new_with_free_func(g_free);

		if (g_strcmp0(g_hash_table_lookup(self->remote_nicks, fold), d) == 0)
			g_hash_table_remove(self->remote_nicks, fold);
		/* cjson writes an empty list as {} */
		if (rooms != NULL && JSON_NODE_HOLDS_ARRAY(rooms)) {
			JsonArray *array = json_node_get_array(rooms);
			for (guint i = 0; i < json_array_get_length(array); i++) {
				const gchar *r = json_array_get_string_element(array, i);
				if (r != NULL && view_remove(self->remote_rooms, r, nick))
					g_ptr_array_add(left, g_strdup(r));
			}
		}
		for (guint i = 0; i < left->len; i++)
			emit_presence(self, g_ptr_array_index(left, i), nick, "quit");
	}
}

static void
handle_event_payload(CodechatCluster *self, const gchar *payload, gsize len)
{
	g_autoptr(JsonParser) parser = json_parser_new();
	g_autoptr(GError) error = NULL;
	JsonNode *root;

	if (!json_parser_load_from_data(parser, payload, (gssize)len, &error)) {
		codechat_warning(NULL, "bad presence event: %s", error->message);
		return;
	}
	root = json_parser_get_root(parser);
	if (root == NULL || !JSON_NODE_HOLDS_OBJECT(root))
		return;
	if (self->state != STATE_READY) {
		/* not yet known whether the snapshot has it */
		g_ptr_array_add(self->early_events, json_node_copy(root));
		return;
	}
	if (json_object_get_int_member_with_default(json_node_get_object(root), "seq", 0) <=
	    self->snapshot_seq)
		return;
	apply_event(self, json_node_get_object(root));
}

typedef struct {
	gchar *room; /* (owned) */
	gchar *nick; /* (owned) */
	const gchar *event;
} Change;

static void
change_free(gpointer data)
{
	Change *c = data;
	g_free(c->room);
	g_free(c->nick);
	g_free(c);
}

static void
changes_add(GPtrArray *changes, const gchar *room, const gchar *nick, const gchar *event)
{
	Change *c = g_new0(Change, 1);
	c->room = g_strdup(room);
	c->nick = g_strdup(nick);
	c->event = event;
	g_ptr_array_add(changes, c);
}

/* replaces the remote view with a snapshot, and tells the differences */
static void
apply_snapshot(CodechatCluster *self, GHashTable *rooms, GHashTable *nicks, gint64 seq)
{
	g_autoptr(GPtrArray) changes = g_ptr_array_new_with_free_func(change_free);
	GHashTableIter it;
	gpointer key, value;

	g_hash_table_iter_init(&it, self->remote_rooms);
	while (g_hash_table_iter_next(&it, &key, &value)) {
		GHashTable *members = value;
		GHashTable *now = g_hash_table_lookup(rooms, key);
		GHashTableIter mit;
		gpointer nick;

		g_hash_table_iter_init(&mit, members);
		while (g_hash_table_iter_next(&mit, &nick, NULL)) {
			g_autofree gchar *fold = codechat_nick_fold(nick);
			if (now != NULL && g_hash_table_contains(now, nick))
				continue;
			changes_add(changes,
				    key,
				    nick,
				    g_hash_table_contains(nicks, fold) ? "part" : "quit");
		}
	}
	g_hash_table_iter_init(&it, rooms);
	while (g_hash_table_iter_next(&it, &key, &value)) {
		GHashTable *before = g_hash_table_lookup(self->remote_rooms, key);
		GHashTableIter mit;
		gpointer nick;

		g_hash_table_iter_init(&mit, value);
		while (g_hash_table_iter_next(&mit, &nick, NULL)) {
			if (before == NULL || !g_hash_table_contains(before, nick))
				changes_add(changes, key, nick, "join");
		}
	}
	g_hash_table_unref(self->remote_rooms);
	self->remote_rooms = g_hash_table_ref(rooms);
	g_hash_table_unref(self->remote_nicks);
	self->remote_nicks = g_hash_table_ref(nicks);
	self->snapshot_seq = seq;

	for (guint i = 0; i < changes->len; i++) {
		Change *c = g_ptr_array_index(changes, i);
		emit_presence(self, c->room, c->nick, c->event);
	}
}

/* ------------------------------------------------------------------ */
/* talking to Redis */

static gboolean
reply_is_error(CodechatCluster *self, const redisReply *reply, const gchar *what)
{
	if (reply == NULL)
		return TRUE; /* the connection went: said elsewhere */
	if (reply->type == REDIS_REPLY_ERROR) {
		codechat_warning(NULL, "redis %s failed: %s", what, reply->str);
		return TRUE;
	}
	return FALSE;
}

static void
script_reply_cb(redisAsyncContext *ac, void *r, void *privdata)
{
	CodechatCluster *self = ac->data;
	reply_is_error(self, r, privdata);
}

/* sends EVAL script 0 args...; FALSE without a connection */
static gboolean
send_script(CodechatCluster *self,
	    const gchar *script,
	    redisCallbackFn *fn,
	    gpointer privdata,
	    const gchar *const *args,
	    guint n_args)
{
	g_autofree gchar *text = g_strconcat(self->script_head, script, NULL);
	g_autofree const gchar **argv = g_new0(const gchar *, n_args + 3);
	g_autofree size_t *argvlen = g_new0(size_t, n_args + 3);

	if (self->cmd == NULL || self->state < STATE_SYNCING || self->state == STATE_GONE)
		return FALSE;
	argv[0] = "EVAL";
	argv[1] = text;
	argv[2] = "0";
	for (guint i = 0; i < n_args; i++)
		argv[i + 3] = args[i];
	for (guint i = 0; i < n_args + 3; i++)
		argvlen[i] = strlen(argv[i]);
	return redisAsyncCommandArgv(self->cmd, fn, privdata, (int)n_args + 3, argv, argvlen) ==
	       REDIS_OK;
}

static void
set_state(CodechatCluster *self, State state)
{
	gboolean was_ready = self->state == STATE_READY;

	self->state = state;
	if (was_ready != (state == STATE_READY))
		g_object_notify_by_pspec(G_OBJECT(self), properties[PROP_READY]);
}

/* frees both connections; their pending callbacks run with no reply */
static void
drop_connections(CodechatCluster *self)
{
	redisAsyncContext *cmd = g_steal_pointer(&self->cmd);
	redisAsyncContext *sub = g_steal_pointer(&self->sub);

	if (cmd != NULL)
		redisAsyncFree(cmd);
	if (sub != NULL)
		redisAsyncFree(sub);
	g_ptr_array_set_size(self->early_events, 0);
}

static gboolean
reconnect_cb(gpointer user_data)
{
	CodechatCluster *self = user_data;

	self->reconnect_id = 0;
	cluster_connect(self);
	return G_SOURCE_REMOVE;
}

static void
connection_lost(CodechatCluster *self, const gchar *why)
{
	if (self->state == STATE_GONE)
		return;
	drop_connections(self);
	set_state(self, STATE_DISCONNECTED);
	if (!self->lost_logged) {
		codechat_warning(NULL, "lost redis at %s: %s; reconnecting", self->url, why);
		self->lost_logged = TRUE;
	} else {
		codechat_debug(NULL, "redis at %s: %s", self->url, why);
	}
	if (self->reconnect_id == 0) {
		self->reconnect_id = g_timeout_add(self->backoff_ms, reconnect_cb, self);
		self->backoff_ms = MIN(self->backoff_ms * 2, BACKOFF_MAX_MS);
	}
}

static void
disconnect_cb(const redisAsyncContext *ac, int status)
{
	CodechatCluster *self = ac->data;

	/* hiredis frees it after this; ours to free were stolen before */
	if (ac == self->cmd)
		self->cmd = NULL;
	else if (ac == self->sub)
		self->sub = NULL;
	else
		return;
	connection_lost(self, ac->errstr[0] != '\0' ? ac->errstr : "connection closed");
}

static void
connect_cb(const redisAsyncContext *ac, int status)
{
	CodechatCluster *self = ac->data;

	if (status == REDIS_OK)
		return;
	if (ac == self->cmd)
		self->cmd = NULL;
	else if (ac == self->sub)
		self->sub = NULL;
	else
		return;
	connection_lost(self, ac->errstr);
}

static redisAsyncContext *
open_context(CodechatCluster *self)
{
	redisAsyncContext *ac;

	if (self->unix_path != NULL)
		ac = redisAsyncConnectUnix(self->unix_path);
	else
		ac = redisAsyncConnect(self->host, self->port);
	if (ac == NULL)
		return NULL;
	if (ac->err != 0) {
		codechat_debug(NULL, "cannot connect to redis at %s: %s", self->url, ac->errstr);
		redisAsyncFree(ac);
		return NULL;
	}
	ac->data = self;
	redis_source_attach(ac);
	redisAsyncSetConnectCallback(ac, connect_cb);
	redisAsyncSetDisconnectCallback(ac, disconnect_cb);
	return ac;
}

static void
snapshot_cb(redisAsyncContext *ac, void *r, void *privdata)
{
	CodechatCluster *self = ac->data;
	redisReply *reply = r;
	g_autoptr(GHashTable) rooms = NULL;
	g_autoptr(GHashTable) nicks = NULL;
	g_autoptr(GPtrArray) early = NULL;
	gint64 seq;

	if (reply_is_error(self, reply, "snapshot") || self->state != STATE_SYNCING)
		return;
	if (reply->type != REDIS_REPLY_ARRAY || reply->elements < 1 ||
	    reply->element[0]->type != REDIS_REPLY_INTEGER) {
		codechat_warning(NULL, "redis snapshot: unexpected reply");
		return;
	}
	seq = reply->element[0]->integer;
	rooms = rooms_table_new();
	nicks = nicks_table_new();
	for (gsize i = 1; i < reply->elements; i++) {
		redisReply *d = reply->element[i];
		const gchar *id;

		if (d->type != REDIS_REPLY_ARRAY || d->elements != 3 ||
		    d->element[0]->type != REDIS_REPLY_STRING)
			continue;
		id = d->element[0]->str;
		for (gsize j = 0; j < d->element[1]->elements; j++) {
			const gchar *nick = d->element[1]->element[j]->str;
			g_hash_table_insert(nicks, codechat_nick_fold(nick), g_strdup(id));
		}
		for (gsize j = 0; j < d->element[2]->elements; j++) {
			const gchar *e = d->element[2]->element[j]->str;
			const gchar *tab = strchr(e, '\t');
			g_autofree gchar *room = NULL;

			if (tab == NULL)
				continue;
			room = g_strndup(e, tab - e);
			view_add(rooms, room, tab + 1, id);
			g_hash_table_insert(nicks, codechat_nick_fold(tab + 1), g_strdup(id));
		}
	}

	early = g_steal_pointer(&self->early_events);
	self->early_events = g_ptr_array_new_with_free_func((GDestroyNotify)json_node_unref);
	self->backoff_ms = BACKOFF_MIN_MS;
	if (self->lost_logged) {
		codechat_message(NULL, "redis at %s is back", self->url);
		self->lost_logged = FALSE;
	}
	set_state(self, STATE_READY);
	apply_snapshot(self, rooms, nicks, seq);
	for (guint i = 0; i < early->len; i++) {
		JsonObject *ev = json_node_get_object(g_ptr_array_index(early, i));
		if (json_object_get_int_member_with_default(ev, "seq", 0) > self->snapshot_seq)
			apply_event(self, ev);
	}
}

static void
register_cb(redisAsyncContext *ac, void *r, void *privdata)
{
	CodechatCluster *self = ac->data;
	redisReply *reply = r;

	if (reply_is_error(self, reply, "register") || reply->type != REDIS_REPLY_ARRAY)
		return;
	for (gsize i = 0; i < reply->elements; i++) {
		const gchar *nick = reply->element[i]->str;
		LocalNick *ln = nick != NULL ? local_nick_lookup(self, nick) : NULL;

		codechat_warning(CODECHAT_LOG_FIELDS(.nick = nick),
				 "nick %s was taken by another daemon while redis was away",
				 nick);
		if (ln == NULL)
			continue;
		g_hash_table_remove_all(ln->rooms);
		ln->claimed = FALSE;
		local_nick_forget_if_unused(self, ln);
		g_signal_emit(self, signals[SIGNAL_NICK_LOST], 0, nick);
	}
}

/* writes this daemon's nicks and memberships anew */
static void
cluster_register(CodechatCluster *self)
{
	g_autoptr(GPtrArray) args = g_ptr_array_new_with_free_func(g_free);
	GHashTableIter it;
	gpointer value;
	guint n = 0;

	g_ptr_array_add(args, g_strdup(self->id));
	g_ptr_array_add(args, g_strdup_printf("%u", self->ttl_ms));
	g_ptr_array_add(args, NULL); /* the count, below */
	g_hash_table_iter_init(&it, self->local);
	while (g_hash_table_iter_next(&it, NULL, &value)) {
		LocalNick *ln = value;
		if (ln->claimed) {
			g_ptr_array_add(args, g_strdup(ln->nick));
			n++;
		}
	}
	args->pdata[2] = g_strdup_printf("%u", n);
	g_hash_table_iter_init(&it, self->local);
	while (g_hash_table_iter_next(&it, NULL, &value)) {
		LocalNick *ln = value;
		GHashTableIter rit;
		gpointer room;

		g_hash_table_iter_init(&rit, ln->rooms);
		while (g_hash_table_iter_next(&rit, &room, NULL))
			g_ptr_array_add(args, g_strdup_printf("%s\t%s", (gchar *)room, ln->nick));
	}
	send_script(self,
		    lua_register,
		    register_cb,
		    NULL,
		    (const gchar *const *)args->pdata,
		    args->len);
}

static void
subscribe_cb(redisAsyncContext *ac, void *r, void *privdata)
{
	CodechatCluster *self = ac->data;
	redisReply *reply = r;
	const gchar *kind;

	if (reply == NULL || reply->type != REDIS_REPLY_ARRAY || reply->elements < 3 ||
	    reply->element[0]->type != REDIS_REPLY_STRING)
		return;
	kind = reply->element[0]->str;
	if (g_str_equal(kind, "subscribe") && self->state == STATE_CONNECTING) {
		const gchar *args[] = {self->id};

		/* from now on no event is missed: the snapshot comes after */
		set_state(self, STATE_SYNCING);
		cluster_register(self);
		send_script(self, lua_snapshot, snapshot_cb, NULL, args, 1);
	} else if (g_str_equal(kind, "message") && reply->element[2]->type == REDIS_REPLY_STRING) {
		handle_event_payload(self, reply->element[2]->str, reply->element[2]->len);
	}
}

static void
cluster_connect(CodechatCluster *self)
{
	g_assert(self->cmd == NULL && self->sub == NULL);

	self->cmd = open_context(self);
	self->sub = open_context(self);
	if (self->cmd == NULL || self->sub == NULL) {
		connection_lost(self, "cannot connect");
		return;
	}
	set_state(self, STATE_CONNECTING);
	/* for CLIENT LIST */
	redisAsyncCommand(self->cmd, NULL, NULL, "CLIENT SETNAME codechatd-%s", self->id);
	redisAsyncCommand(self->sub, NULL, NULL, "CLIENT SETNAME codechatd-%s", self->id);
	if (self->db != 0)
		redisAsyncCommand(self->cmd, NULL, NULL, "SELECT %d", self->db);
	redisAsyncCommand(self->sub, subscribe_cb, NULL, "SUBSCRIBE %s", self->channel);
}

static void
heartbeat_reply_cb(redisAsyncContext *ac, void *r, void *privdata)
{
	CodechatCluster *self = ac->data;
	redisReply *reply = r;

	if (reply_is_error(self, reply, "heartbeat") || reply->type != REDIS_REPLY_INTEGER)
		return;
	if (reply->integer == 0 && self->state == STATE_READY) {
		/* reaped as dead (stalled longer than the expiry, or Redis lost
		 * its data): be there again */
		codechat_warning(NULL, "this daemon had expired in redis; registering again");
		cluster_register(self);
	}
}

static gboolean
heartbeat_cb(gpointer user_data)
{
	CodechatCluster *self = user_data;
	g_autofree gchar *ttl = g_strdup_printf("%u", self->ttl_ms);
	const gchar *args[] = {self->id, ttl};

	if (self->state == STATE_READY)
		send_script(self, lua_heartbeat, heartbeat_reply_cb, NULL, args, 2);
	return G_SOURCE_CONTINUE;
}

/* ------------------------------------------------------------------ */
/* URLs */

/* the store's grammar (redis://HOST[:PORT][/DB], unix:///PATH[?db=DB]):
 * the history and the presence of a deployment are in the same database */
static gboolean
parse_url(CodechatCluster *self, const gchar *url, GError **error)
{
	g_autoptr(GError) local_error = NULL;

	if (!codechat_store_redis_parse_url(url,
					    &self->host,
					    &self->port,
					    &self->unix_path,
					    &self->db,
					    &local_error)) {
		g_set_error_literal(error,
				    CODECHAT_ERROR,
				    CODECHAT_ERROR_INVALID_ARGUMENT,
				    local_error->message);
		return FALSE;
	}
	self->channel = self->db == 0 ? g_strdup(PRESENCE_CHANNEL)
				      : g_strdup_printf(PRESENCE_CHANNEL ":%d", self->db);
	self->script_head = g_strdup_printf("local CH = '%s'\n", self->channel);
	return TRUE;
}

/* a blocking connection, for the check at construction and the goodbye */
static redisContext *
open_sync(CodechatCluster *self, GError **error)
{
	struct timeval tv = {SYNC_TIMEOUT_MS / 1000, (SYNC_TIMEOUT_MS % 1000) * 1000};
	redisContext *c;

	if (self->unix_path != NULL)
		c = redisConnectUnixWithTimeout(self->unix_path, tv);
	else
		c = redisConnectWithTimeout(self->host, self->port, tv);
	if (c == NULL || c->err != 0) {
		g_set_error(error,
			    CODECHAT_ERROR,
			    CODECHAT_ERROR_OVERLOADED,
			    "cannot connect to redis at %s: %s",
			    self->url,
			    c != NULL ? c->errstr : "out of memory");
		if (c != NULL)
			redisFree(c);
		return NULL;
	}
	redisSetTimeout(c, tv);
	if (self->db != 0) {
		redisReply *reply = redisCommand(c, "SELECT %d", self->db);
		gboolean ok = reply != NULL && reply->type != REDIS_REPLY_ERROR;

		if (!ok)
			g_set_error(error,
				    CODECHAT_ERROR,
				    CODECHAT_ERROR_OVERLOADED,
				    "redis at %s: cannot select database %d",
				    self->url,
				    self->db);
		if (reply != NULL)
			freeReplyObject(reply);
		if (!ok) {
			redisFree(c);
			return NULL;
		}
	}
	return c;
}

/* hiredis writes with write(2), not send(MSG_NOSIGNAL): a Redis that went
 * away in the middle would kill the whole daemon with SIGPIPE.  Unless the
 * program has a handler of its own, the write fails with EPIPE instead. */
static void
ignore_sigpipe(void)
{
	struct sigaction sa;

	if (sigaction(SIGPIPE, NULL, &sa) == 0 && sa.sa_handler == SIG_DFL)
		signal(SIGPIPE, SIG_IGN);
}

/* ------------------------------------------------------------------ */
/* public API */

/**
 * codechat_cluster_new:
 * @redis_url: `redis://host[:port][/db]` or `unix:///path/to/socket[?db=DB]`, as for --redis
 * @error: return location for a #GError
 *
 * Joins this daemon to the cluster on @redis_url with the default
 * heartbeat (2 s) and expiry (10 s); see codechat_cluster_new_full().
 *
 * Returns: (transfer full) (nullable): the cluster, or %NULL with @error
 */
CodechatCluster *
codechat_cluster_new(const gchar *redis_url, GError **error)
{
	return codechat_cluster_new_full(redis_url, DEFAULT_HEARTBEAT_MS, DEFAULT_TTL_MS, error);
}

/**
 * codechat_cluster_new_full:
 * @redis_url: `redis://host[:port][/db]` or `unix:///path/to/socket[?db=DB]`, as for --redis
 * @heartbeat_ms: how often this daemon says it is alive
 * @ttl_ms: how long after its last heartbeat a daemon counts as dead;
 *   several times @heartbeat_ms
 * @error: return location for a #GError
 *
 * Picks a random daemon id, checks that Redis answers (the one blocking
 * step, bounded by 1 s), then connects on the main loop: registers, loads
 * the other daemons' state and starts the heartbeat.  #CodechatCluster:ready
 * turns %TRUE once loaded, and back to %FALSE while Redis is away; the
 * cluster reconnects by itself.
 *
 * Returns: (transfer full) (nullable): the cluster, or %NULL with @error
 */
CodechatCluster *
codechat_cluster_new_full(const gchar *redis_url, guint heartbeat_ms, guint ttl_ms, GError **error)
{
	g_autoptr(CodechatCluster) self = NULL;
	redisContext *c;
	redisReply *reply;

	g_return_val_if_fail(redis_url != NULL, NULL);
	g_return_val_if_fail(heartbeat_ms > 0 && ttl_ms > heartbeat_ms, NULL);
	g_return_val_if_fail(error == NULL || *error == NULL, NULL);

	self = g_object_new(CODECHAT_TYPE_CLUSTER,
			    "url",
			    redis_url,
			    "heartbeat-ms",
			    heartbeat_ms,
			    "ttl-ms",
			    ttl_ms,
			    NULL);
	if (!parse_url(self, redis_url, error)) {
		self->state = STATE_GONE;
		return NULL;
	}
	c = open_sync(self, error);
	if (c == NULL) {
		self->state = STATE_GONE; /* nothing to remove at dispose */
		return NULL;
	}
	reply = redisCommand(c, "PING");
	if (reply == NULL || reply->type == REDIS_REPLY_ERROR) {
		g_set_error(error,
			    CODECHAT_ERROR,
			    CODECHAT_ERROR_OVERLOADED,
			    "redis at %s does not answer: %s",
			    redis_url,
			    reply != NULL ? reply->str : c->errstr);
		if (reply != NULL)
			freeReplyObject(reply);
		redisFree(c);
		self->state = STATE_GONE;
		return NULL;
	}
	freeReplyObject(reply);
	redisFree(c);

	ignore_sigpipe();
	codechat_info(NULL, "cluster member %s on redis at %s", self->id, redis_url);
	cluster_connect(self);
	self->heartbeat_id = g_timeout_add(self->heartbeat_ms, heartbeat_cb, self);
	return g_steal_pointer(&self);
}

/**
 * codechat_cluster_get_id:
 * @self: a #CodechatCluster
 *
 * Returns: this daemon's random id, as written in Redis
 */
const gchar *
codechat_cluster_get_id(CodechatCluster *self)
{
	g_return_val_if_fail(CODECHAT_IS_CLUSTER(self), NULL);
	return self->id;
}

/**
 * codechat_cluster_is_ready:
 * @self: a #CodechatCluster
 *
 * Returns: %TRUE when connected and the remote view is loaded
 */
gboolean
codechat_cluster_is_ready(CodechatCluster *self)
{
	g_return_val_if_fail(CODECHAT_IS_CLUSTER(self), FALSE);
	return self->state == STATE_READY;
}

typedef struct {
	CodechatCluster *self; /* (unowned) callbacks run before it goes */
	gchar *nick;	       /* (owned) */
	CodechatClusterClaimFunc func;
	gpointer user_data;
	GError *error; /* (owned) (nullable) for an answer from an idle */
} Claim;

static void
claim_free(Claim *claim)
{
	g_free(claim->nick);
	g_clear_error(&claim->error);
	g_free(claim);
}

static gboolean
claim_fail_idle_cb(gpointer user_data)
{
	Claim *claim = user_data;
	claim->func(FALSE, claim->error, claim->user_data);
	claim_free(claim);
	return G_SOURCE_REMOVE;
}

static void
claim_reply_cb(redisAsyncContext *ac, void *r, void *privdata)
{
	Claim *claim = privdata;
	CodechatCluster *self = claim->self;
	redisReply *reply = r;
	g_autoptr(GError) error = NULL;
	gboolean claimed = FALSE;

	if (reply == NULL) {
		error = g_error_new(CODECHAT_ERROR,
				    CODECHAT_ERROR_OVERLOADED,
				    "the connection to redis went");
	} else if (reply->type != REDIS_REPLY_INTEGER) {
		error = g_error_new(CODECHAT_ERROR,
				    CODECHAT_ERROR_OVERLOADED,
				    "redis could not claim the nick: %s",
				    reply->type == REDIS_REPLY_ERROR ? reply->str : "odd reply");
		codechat_warning(CODECHAT_LOG_FIELDS(.nick = claim->nick), "%s", error->message);
	} else if (reply->integer < 0) {
		error = g_error_new(CODECHAT_ERROR,
				    CODECHAT_ERROR_OVERLOADED,
				    "this daemon is not registered in redis");
		if (self->state == STATE_READY)
			cluster_register(self);
	} else if (reply->integer == 1) {
		claimed = TRUE;
		local_nick_ensure(self, claim->nick)->claimed = TRUE;
	}
	codechat_debug(CODECHAT_LOG_FIELDS(.nick = claim->nick),
		       "claim of %s: %s",
		       claim->nick,
		       claimed	       ? "granted"
		       : error != NULL ? error->message
				       : "held elsewhere");
	claim->func(claimed, error, claim->user_data);
	claim_free(claim);
}

/**
 * codechat_cluster_claim_nick:
 * @self: a #CodechatCluster
 * @nick: a valid nick
 * @func: called once with the answer, always from the main loop
 * @user_data: for @func
 *
 * Claims @nick for a session of this daemon: granted unless a live daemon
 * holds it, whatever the case; a dead daemon's claim (its heartbeat
 * expired) is taken over, and that daemon reaped.  Without Redis, @func
 * gets %CODECHAT_ERROR_OVERLOADED.  Release with
 * codechat_cluster_release_nick() or codechat_cluster_quit().
 */
void
codechat_cluster_claim_nick(CodechatCluster *self,
			    const gchar *nick,
			    CodechatClusterClaimFunc func,
			    gpointer user_data)
{
	Claim *claim;
	const gchar *args[2];

	g_return_if_fail(CODECHAT_IS_CLUSTER(self));
	g_return_if_fail(nick != NULL);
	g_return_if_fail(func != NULL);

	claim = g_new0(Claim, 1);
	claim->self = self;
	claim->nick = g_strdup(nick);
	claim->func = func;
	claim->user_data = user_data;
	args[0] = self->id;
	args[1] = nick;
	if (self->state != STATE_READY ||
	    !send_script(self, lua_claim, claim_reply_cb, claim, args, 2)) {
		claim->error =
		    g_error_new(CODECHAT_ERROR, CODECHAT_ERROR_OVERLOADED, "redis is unavailable");
		g_idle_add(claim_fail_idle_cb, claim);
	}
}

/**
 * codechat_cluster_release_nick:
 * @self: a #CodechatCluster
 * @nick: a nick claimed with codechat_cluster_claim_nick()
 *
 * Gives @nick back, e.g. when the session's hello failed after the claim.
 * A session that ends calls codechat_cluster_quit() instead.
 */
void
codechat_cluster_release_nick(CodechatCluster *self, const gchar *nick)
{
	LocalNick *ln;
	const gchar *args[2];

	g_return_if_fail(CODECHAT_IS_CLUSTER(self));
	g_return_if_fail(nick != NULL);

	ln = local_nick_lookup(self, nick);
	if (ln != NULL) {
		ln->claimed = FALSE;
		local_nick_forget_if_unused(self, ln);
	}
	args[0] = self->id;
	args[1] = nick;
	send_script(self, lua_release, script_reply_cb, "release", args, 2);
}

/**
 * codechat_cluster_join:
 * @self: a #CodechatCluster
 * @room: a room name
 * @nick: a nick of a session of this daemon
 *
 * Records that @nick joined @room here, and tells the other daemons
 * (a "join" #CodechatCluster::presence there).  Without Redis, it is kept
 * and written once Redis is back.
 */
void
codechat_cluster_join(CodechatCluster *self, const gchar *room, const gchar *nick)
{
	LocalNick *ln;
	const gchar *args[3];

	g_return_if_fail(CODECHAT_IS_CLUSTER(self));
	g_return_if_fail(room != NULL && strchr(room, '\t') == NULL);
	g_return_if_fail(nick != NULL);

	ln = local_nick_ensure(self, nick);
	g_hash_table_add(ln->rooms, g_strdup(room));
	args[0] = self->id;
	args[1] = room;
	args[2] = nick;
	send_script(self, lua_join, script_reply_cb, "join", args, 3);
}

/**
 * codechat_cluster_part:
 * @self: a #CodechatCluster
 * @room: a room that @nick joined with codechat_cluster_join()
 * @nick: a nick of a session of this daemon
 *
 * Records that @nick left @room ("part" for the other daemons).
 */
void
codechat_cluster_part(CodechatCluster *self, const gchar *room, const gchar *nick)
{
	LocalNick *ln;
	const gchar *args[3];

	g_return_if_fail(CODECHAT_IS_CLUSTER(self));
	g_return_if_fail(room != NULL);
	g_return_if_fail(nick != NULL);

	ln = local_nick_lookup(self, nick);
	if (ln != NULL) {
		g_hash_table_remove(ln->rooms, room);
		local_nick_forget_if_unused(self, ln);
	}
	args[0] = self->id;
	args[1] = room;
	args[2] = nick;
	send_script(self, lua_part, script_reply_cb, "part", args, 3);
}

/**
 * codechat_cluster_quit:
 * @self: a #CodechatCluster
 * @nick: the nick of a session of this daemon that is gone
 *
 * Leaves every room @nick was in, with "quit" for the other daemons, and
 * releases the nick's claim.
 */
void
codechat_cluster_quit(CodechatCluster *self, const gchar *nick)
{
	g_autoptr(GPtrArray) args = g_ptr_array_new();
	g_autofree gchar *fold = NULL;
	LocalNick *ln;

	g_return_if_fail(CODECHAT_IS_CLUSTER(self));
	g_return_if_fail(nick != NULL);

	fold = codechat_nick_fold(nick);
	ln = g_hash_table_lookup(self->local, fold);
	g_ptr_array_add(args, self->id);
	g_ptr_array_add(args, ln != NULL ? ln->nick : (gchar *)nick);
	if (ln != NULL) {
		GHashTableIter it;
		gpointer room;

		g_hash_table_iter_init(&it, ln->rooms);
		while (g_hash_table_iter_next(&it, &room, NULL))
			g_ptr_array_add(args, room);
	}
	send_script(self,
		    lua_quit,
		    script_reply_cb,
		    "quit",
		    (const gchar *const *)args->pdata,
		    args->len);
	/* ln's strings are in args: the script is sent (copied) first */
	g_hash_table_remove(self->local, fold);
}

static gint
compare_strings(gconstpointer a, gconstpointer b)
{
	return g_strcmp0(*(const gchar *const *)a, *(const gchar *const *)b);
}

/**
 * codechat_cluster_dup_remote_members:
 * @self: a #CodechatCluster
 * @room: a room name
 *
 * Returns: (transfer full) (element-type utf8): the nicks in @room on the
 *   other live daemons, sorted; empty when there are none
 */
GPtrArray *
codechat_cluster_dup_remote_members(CodechatCluster *self, const gchar *room)
{
	GPtrArray *nicks = g_ptr_array_new_with_free_func(g_free);
	GHashTable *members;

	g_return_val_if_fail(CODECHAT_IS_CLUSTER(self), nicks);
	g_return_val_if_fail(room != NULL, nicks);

	members = g_hash_table_lookup(self->remote_rooms, room);
	if (members != NULL) {
		GHashTableIter it;
		gpointer nick;

		g_hash_table_iter_init(&it, members);
		while (g_hash_table_iter_next(&it, &nick, NULL))
			g_ptr_array_add(nicks, g_strdup(nick));
	}
	g_ptr_array_sort(nicks, compare_strings);
	return nicks;
}

/**
 * codechat_cluster_count_remote_members:
 * @self: a #CodechatCluster
 * @room: a room name
 *
 * Returns: how many nicks are in @room on the other live daemons
 */
guint
codechat_cluster_count_remote_members(CodechatCluster *self, const gchar *room)
{
	GHashTable *members;

	g_return_val_if_fail(CODECHAT_IS_CLUSTER(self), 0);
	g_return_val_if_fail(room != NULL, 0);

	members = g_hash_table_lookup(self->remote_rooms, room);
	return members != NULL ? g_hash_table_size(members) : 0;
}

/**
 * codechat_cluster_dup_remote_rooms:
 * @self: a #CodechatCluster
 *
 * Returns: (transfer full) (element-type utf8): the rooms with members on
 *   the other live daemons, sorted
 */
GPtrArray *
codechat_cluster_dup_remote_rooms(CodechatCluster *self)
{
	GPtrArray *rooms = g_ptr_array_new_with_free_func(g_free);
	GHashTableIter it;
	gpointer room;

	g_return_val_if_fail(CODECHAT_IS_CLUSTER(self), rooms);

	g_hash_table_iter_init(&it, self->remote_rooms);
	while (g_hash_table_iter_next(&it, &room, NULL))
		g_ptr_array_add(rooms, g_strdup(room));
	g_ptr_array_sort(rooms, compare_strings);
	return rooms;
}

/**
 * codechat_cluster_nick_is_remote:
 * @self: a #CodechatCluster
 * @nick: a nick
 *
 * Returns: %TRUE when a session of another live daemon has @nick (any
 *   case), as far as this daemon knows; e.g. to route a direct message
 */
gboolean
codechat_cluster_nick_is_remote(CodechatCluster *self, const gchar *nick)
{
	g_autofree gchar *fold = NULL;

	g_return_val_if_fail(CODECHAT_IS_CLUSTER(self), FALSE);
	g_return_val_if_fail(nick != NULL, FALSE);

	fold = codechat_nick_fold(nick);
	return g_hash_table_contains(self->remote_nicks, fold);
}

static void
cluster_stop(CodechatCluster *self)
{
	g_clear_handle_id(&self->heartbeat_id, g_source_remove);
	g_clear_handle_id(&self->reconnect_id, g_source_remove);
	set_state(self, STATE_GONE);
	drop_connections(self);
}

/**
 * codechat_cluster_shutdown:
 * @self: a #CodechatCluster
 * @error: return location for a #GError
 *
 * Leaves the cluster cleanly: removes this daemon's claims and memberships
 * from Redis, with a "quit" for each of its members to the other daemons,
 * and stops.  It blocks (at most about 1 s): call it on the way out.  Also
 * done by dispose when not called before.
 *
 * Returns: %TRUE when Redis confirmed
 */
gboolean
codechat_cluster_shutdown(CodechatCluster *self, GError **error)
{
	redisContext *c;
	redisReply *reply;
	gboolean ok;

	g_return_val_if_fail(CODECHAT_IS_CLUSTER(self), FALSE);

	if (self->state == STATE_GONE)
		return TRUE;
	cluster_stop(self);
	c = open_sync(self, error);
	if (c == NULL)
		return FALSE;
	reply = redisCommand(c, "EVAL %s%s 0 %s", self->script_head, lua_leave, self->id);
	ok = reply != NULL && reply->type != REDIS_REPLY_ERROR;
	if (!ok)
		g_set_error(error,
			    CODECHAT_ERROR,
			    CODECHAT_ERROR_OVERLOADED,
			    "redis at %s: cannot leave the cluster: %s",
			    self->url,
			    reply != NULL ? reply->str : c->errstr);
	if (reply != NULL)
		freeReplyObject(reply);
	redisFree(c);
	if (ok)
		codechat_info(NULL, "left the cluster on redis at %s", self->url);
	return ok;
}

/**
 * codechat_cluster_simulate_crash:
 * @self: a #CodechatCluster
 *
 * For tests: stops as if the process had died, leaving its entries in
 * Redis for the other daemons to reap once its heartbeat expired.
 */
void
codechat_cluster_simulate_crash(CodechatCluster *self)
{
	g_return_if_fail(CODECHAT_IS_CLUSTER(self));
	cluster_stop(self);
}

/* ------------------------------------------------------------------ */
/* GObject */

static void
codechat_cluster_dispose(GObject *object)
{
	CodechatCluster *self = CODECHAT_CLUSTER(object);

	/* a cluster that never connected (a bad URL) has nothing to remove */
	if (self->state != STATE_GONE && (self->unix_path != NULL || self->host != NULL)) {
		g_autoptr(GError) error = NULL;
		if (!codechat_cluster_shutdown(self, &error))
			codechat_warning(NULL, "%s", error->message);
	}
	cluster_stop(self);
	G_OBJECT_CLASS(codechat_cluster_parent_class)->dispose(object);
}

static void
codechat_cluster_finalize(GObject *object)
{
	CodechatCluster *self = CODECHAT_CLUSTER(object);

	g_free(self->id);
	g_free(self->url);
	g_free(self->unix_path);
	g_free(self->host);
	g_free(self->channel);
	g_free(self->script_head);
	g_hash_table_unref(self->local);
	g_hash_table_unref(self->remote_rooms);
	g_hash_table_unref(self->remote_nicks);
	g_ptr_array_unref(self->early_events);
	G_OBJECT_CLASS(codechat_cluster_parent_class)->finalize(object);
}

static void
codechat_cluster_get_property(GObject *object, guint prop_id, GValue *value, GParamSpec *pspec)
{
	CodechatCluster *self = CODECHAT_CLUSTER(object);

	switch (prop_id) {
	case PROP_URL:
		g_value_set_string(value, self->url);
		break;
	case PROP_HEARTBEAT_MS:
		g_value_set_uint(value, self->heartbeat_ms);
		break;
	case PROP_TTL_MS:
		g_value_set_uint(value, self->ttl_ms);
		break;
	case PROP_READY:
		g_value_set_boolean(value, self->state == STATE_READY);
		break;
	default:
		G_OBJECT_WARN_INVALID_PROPERTY_ID(object, prop_id, pspec);
	}
}

static void
codechat_cluster_set_property(GObject *object,
			      guint prop_id,
			      const GValue *value,
			      GParamSpec *pspec)
{
	CodechatCluster *self = CODECHAT_CLUSTER(object);

	switch (prop_id) {
	case PROP_URL:
		g_free(self->url);
		self->url = g_value_dup_string(value);
		break;
	case PROP_HEARTBEAT_MS:
		self->heartbeat_ms = g_value_get_uint(value);
		break;
	case PROP_TTL_MS:
		self->ttl_ms = g_value_get_uint(value);
		break;
	default:
		G_OBJECT_WARN_INVALID_PROPERTY_ID(object, prop_id, pspec);
	}
}

static void
codechat_cluster_class_init(CodechatClusterClass *klass)
{
	GObjectClass *object_class = G_OBJECT_CLASS(klass);

	object_class->dispose = codechat_cluster_dispose;
	object_class->finalize = codechat_cluster_finalize;
	object_class->get_property = codechat_cluster_get_property;
	object_class->set_property = codechat_cluster_set_property;

	properties[PROP_URL] = g_param_spec_string("url",
						   NULL,
						   NULL,
						   NULL,
						   G_PARAM_READWRITE | G_PARAM_CONSTRUCT_ONLY |
						       G_PARAM_STATIC_STRINGS);
	properties[PROP_HEARTBEAT_MS] =
	    g_param_spec_uint("heartbeat-ms",
			      NULL,
			      NULL,
			      1,
			      G_MAXUINT,
			      DEFAULT_HEARTBEAT_MS,
			      G_PARAM_READWRITE | G_PARAM_CONSTRUCT_ONLY | G_PARAM_STATIC_STRINGS);
	properties[PROP_TTL_MS] =
	    g_param_spec_uint("ttl-ms",
			      NULL,
			      NULL,
			      2,
			      G_MAXUINT,
			      DEFAULT_TTL_MS,
			      G_PARAM_READWRITE | G_PARAM_CONSTRUCT_ONLY | G_PARAM_STATIC_STRINGS);
	/* connected to Redis, with the other daemons' state loaded */
	properties[PROP_READY] = g_param_spec_boolean("ready",
						      NULL,
						      NULL,
						      FALSE,
						      G_PARAM_READABLE | G_PARAM_EXPLICIT_NOTIFY |
							  G_PARAM_STATIC_STRINGS);
	g_object_class_install_properties(object_class, N_PROPS, properties);

	/**
	 * CodechatCluster::presence:
	 * @room: the room
	 * @nick: the nick, of a session of another daemon
	 * @event: "join", "part" or "quit"
	 *
	 * A change of another daemon's members, including a "quit" for each
	 * member of a daemon that died; once per change.
	 */
	signals[SIGNAL_PRESENCE] = g_signal_new("presence",
						G_TYPE_FROM_CLASS(klass),
						G_SIGNAL_RUN_LAST,
						0,
						NULL,
						NULL,
						NULL,
						G_TYPE_NONE,
						3,
						G_TYPE_STRING,
						G_TYPE_STRING,
						G_TYPE_STRING);
	/**
	 * CodechatCluster::nick-lost:
	 * @nick: a nick this daemon had claimed
	 *
	 * Redis was away long enough for this daemon to count as dead, and a
	 * live daemon claimed @nick meanwhile: the local session must end.
	 */
	signals[SIGNAL_NICK_LOST] = g_signal_new("nick-lost",
						 G_TYPE_FROM_CLASS(klass),
						 G_SIGNAL_RUN_LAST,
						 0,
						 NULL,
						 NULL,
						 NULL,
						 G_TYPE_NONE,
						 1,
						 G_TYPE_STRING);
}

static void
codechat_cluster_init(CodechatCluster *self)
{
	self->id = g_uuid_string_random();
	self->state = STATE_DISCONNECTED;
	self->backoff_ms = BACKOFF_MIN_MS;
	self->local = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, local_nick_free);
	self->remote_rooms = rooms_table_new();
	self->remote_nicks = nicks_table_new();
	self->early_events = g_ptr_array_new_with_free_func((GDestroyNotify)json_node_unref);
}
