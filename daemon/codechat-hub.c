/* SPDX-License-Identifier: GPL-3.0-or-later */
#define G_LOG_DOMAIN "codechatd"

#include "config.h"

#include <string.h>

#include "codechat-accounts.h"
#include "codechat-cluster.h"
#include "codechat-hub.h"
#include "codechat-log.h"
#include "codechat-version.h"

typedef struct _Session Session;

typedef struct {
	gchar *name;	    /* (owned) */
	GPtrArray *members; /* (owned) (element-type Session) unowned sessions, in join order */
} Room;

/*
 * Replies go out in the order of the requests.  A say is answered only
 * once the store kept the message, so each say leaves a place in the
 * session's reply queue (outq) that its answer fills; replies behind it
 * wait.  Requests that arrive meanwhile, other than further says, wait
 * unprocessed (deferred), so that e.g. a join's "joined" cannot fall behind
 * the room's live traffic.  Broadcasts never wait: they are in id order
 * already.  Nearly always both queues are empty.
 */
typedef struct {
	gchar *frame;	  /* (owned) (nullable) NULL while a say waits for the store */
	GPtrArray *extra; /* (owned) (nullable) (element-type utf8) frames right behind it */
} OutFrame;

/* a message of a room that came while the session's replay was read */
typedef struct {
	guint64 id;
	gchar *frame; /* (owned) */
} LiveFrame;

typedef struct {
	CodechatRequest *req; /* (owned) (nullable) a request to handle */
	gchar *frame;	      /* (owned) (nullable) or an error reply to send */
	/* came while the hello's nick claim was in flight, and is no hello:
	 * refused as before a hello if the claim failed */
	gboolean before_welcome;
	gchar *ref; /* (owned) (nullable) the request's ref, for that refusal */
} Deferred;

struct _Session {
	gint ref_count;
	CodechatHub *hub;      /* (unowned) NULL once the session left the hub */
	CodechatWsConn *conn;  /* (owned) */
	gchar *peer;	       /* (owned) */
	gchar *address;	       /* (owned) the peer's IP address */
	gchar *nick;	       /* (owned) (nullable) NULL until hello */
	gchar *nick_fold;      /* (owned) (nullable) */
	gchar *account_hash;   /* (owned) (nullable) the hash its token matched */
	GPtrArray *rooms;      /* (owned) (element-type Room) unowned rooms joined */
	gdouble tokens;	       /* rate limit bucket */
	gint64 refill_us;      /* monotonic time of the last refill */
	gint64 last_seen_us;   /* monotonic time of the last frame or pong */
	GList hello_link;      /* in the hub's hello queue while data is set */
	gint64 hello_deadline; /* monotonic */
	GQueue outq;	       /* (owned) (element-type OutFrame) replies in order */
	GQueue deferred;       /* (owned) (element-type Deferred) */
	Room *replay_room;     /* (unowned) (nullable) joined with since, replay being read */
	GPtrArray *held;       /* (owned) (nullable) (element-type LiveFrame) held meanwhile */
	gboolean pumping;
	gboolean counted;  /* in the hub's n_live */
	gboolean closing;  /* we or the peer began closing: no more requests */
	gboolean slow;	   /* closed for reading too slowly: nothing more to send */
	gboolean claiming; /* the hello's nick claim is in flight in the cluster */
	gboolean claimed;  /* the cluster holds the nick for this session */
	guint serial;
};

struct _CodechatHub {
	GObject parent_instance;
	CodechatStore *store; /* (owned) */
	CodechatHubConfig config;
	GHashTable *sessions; /* (owned) Session set, holding a reference each */
	GHashTable *nicks;    /* (owned) folded nick -> unowned Session */
	GHashTable *rooms;    /* (owned) name -> Room, rooms with members */
	JsonParser *parser;   /* (owned) reused for every frame */
	guint keepalive_id;   /* GSource id, 0 if none */
	GQueue hello_queue;   /* (element-type Session) unowned, waiting for hello, oldest first */
	guint hello_timer_id; /* GSource id, 0 if none */
	guint next_serial;
	gboolean shutting_down;
	guint n_live;		 /* sessions accepted and not closing */
	GHashTable *per_address; /* (owned) address -> GUINT count of live sessions */
	gdouble post_tokens;	 /* rate limit of codechat_hub_post() */
	gint64 post_refill_us;
	CodechatAccounts *accounts; /* (owned) (nullable) */
	gboolean require_auth;	    /* a token even when there are no accounts */
	CodechatMetrics *metrics;   /* (owned) */
	CodechatCluster *cluster;   /* (owned) (nullable) other daemons on the same Redis */
};

G_DEFINE_FINAL_TYPE(CodechatHub, codechat_hub, G_TYPE_OBJECT)

static void
hub_session_leave(CodechatHub *self, Session *s);
static void
hub_hello_arm(CodechatHub *self);

/* the session no longer waits for its hello: said, or leaving */
static void
hub_hello_done(CodechatHub *self, Session *s)
{
	if (s->hello_link.data == NULL)
		return;
	g_queue_unlink(&self->hello_queue, &s->hello_link);
	s->hello_link.data = NULL;
}

enum {
	SIGNAL_DRAINED,
	SIGNAL_MESSAGE_POSTED,
	SIGNAL_MEMBER_JOINED,
	SIGNAL_MEMBER_LEFT,
	SIGNAL_CONNECTIONS_CHANGED,
	N_SIGNALS
};
static guint signals[N_SIGNALS] = {0};

void
codechat_hub_config_init(CodechatHubConfig *config)
{
	config->rate = CODECHAT_DEFAULT_RATE;
	config->burst = CODECHAT_DEFAULT_BURST;
	config->max_text = CODECHAT_MAX_TEXT;
	config->max_frame = CODECHAT_DEFAULT_MAX_FRAME;
	config->hello_timeout = CODECHAT_DEFAULT_HELLO_TIMEOUT;
	config->keepalive = CODECHAT_DEFAULT_KEEPALIVE;
	config->max_connections = 10000;
	config->max_per_address = CODECHAT_DEFAULT_MAX_PER_ADDRESS;
	config->max_outbound = CODECHAT_DEFAULT_MAX_OUTBOUND;
}

/* sessions */

static Session *
session_ref(Session *s)
{
	s->ref_count++;
	return s;
}

static void
out_frame_free(OutFrame *out)
{
	g_free(out->frame);
	g_clear_pointer(&out->extra, g_ptr_array_unref);
	g_free(out);
}

static void
live_frame_free(LiveFrame *live)
{
	g_free(live->frame);
	g_free(live);
}

static void
deferred_free(Deferred *d)
{
	g_clear_pointer(&d->req, codechat_request_free);
	g_free(d->frame);
	g_free(d->ref);
	g_free(d);
}

static void
session_unref(Session *s)
{
	if (--s->ref_count > 0)
		return;
	g_queue_clear_full(&s->outq, (GDestroyNotify)out_frame_free);
	g_queue_clear_full(&s->deferred, (GDestroyNotify)deferred_free);
	g_clear_pointer(&s->held, g_ptr_array_unref);
	codechat_ws_conn_disconnect(s->conn);
	g_clear_pointer(&s->conn, codechat_ws_conn_unref);
	g_ptr_array_unref(s->rooms);
	g_free(s->peer);
	g_free(s->address);
	g_free(s->nick);
	g_free(s->nick_fold);
	g_free(s->account_hash);
	g_free(s);
}

G_DEFINE_AUTOPTR_CLEANUP_FUNC(Session, session_unref)

static gboolean
session_is_open(Session *s)
{
	return s->conn != NULL && codechat_ws_conn_get_state(s->conn) == CODECHAT_WS_OPEN;
}

static void
session_close_slow(Session *s);

/* the same frame, serialized once, for every recipient */
static void
session_send_frame(Session *s, CodechatWsFrame *frame)
{
	guint64 queued;

	if (!session_is_open(s) || s->slow)
		return;
	if (s->hub != NULL && s->hub->config.max_outbound > 0 &&
	    codechat_ws_conn_get_queued(s->conn, &queued) &&
	    queued + codechat_ws_frame_get_size(frame) > s->hub->config.max_outbound) {
		/* output waits for the end of the main loop iteration: a burst
		 * may pass the bound before anything was written, so the
		 * socket gets what it takes first */
		gboolean open;

		/* a write error ends the session, which may drop the last
		 * reference of the caller's */
		session_ref(s);
		codechat_ws_conn_flush(s->conn);
		open = session_is_open(s) && s->hub != NULL;
		session_unref(s);
		if (!open)
			return;
		codechat_ws_conn_get_queued(s->conn, &queued);
		if (queued + codechat_ws_frame_get_size(frame) > s->hub->config.max_outbound) {
			codechat_message(CODECHAT_LOG_FIELDS(.peer = s->peer, .nick = s->nick),
					 "session %u (%s): %" G_GUINT64_FORMAT
					 " bytes wait for a slow reader; closing",
					 s->serial,
					 s->peer,
					 queued);
			session_close_slow(s);
			return;
		}
	}
	codechat_ws_conn_send(s->conn, frame);
}

static void
session_send(Session *s, const gchar *text)
{
	g_autoptr(CodechatWsFrame) frame = NULL;

	if (!session_is_open(s) || s->slow)
		return;
	frame = codechat_ws_frame_new_text(text, strlen(text));
	session_send_frame(s, frame);
}

/* a direct reply: after every earlier reply */
static void
session_reply(Session *s, const gchar *frame)
{
	if (g_queue_is_empty(&s->outq)) {
		session_send(s, frame);
	} else {
		OutFrame *out = g_new0(OutFrame, 1);
		out->frame = g_strdup(frame);
		g_queue_push_tail(&s->outq, out);
	}
}

/* a place in the reply order for an answer that comes later */
static OutFrame *
session_hold_place(Session *s)
{
	OutFrame *out = g_new0(OutFrame, 1);
	g_queue_push_tail(&s->outq, out);
	return out;
}

static void
handle_request(CodechatHub *self, Session *s, CodechatRequest *req);
static void
handle_before_hello(CodechatHub *self, Session *s, Deferred *d);

/* sends the replies that are ready, then handles what waited for them */
static void
session_pump(Session *s)
{
	if (s->pumping)
		return;
	s->pumping = TRUE;
	for (;;) {
		OutFrame *head;
		Deferred *d;

		while ((head = g_queue_peek_head(&s->outq)) != NULL && head->frame != NULL) {
			g_queue_pop_head(&s->outq);
			session_send(s, head->frame);
			for (guint i = 0; head->extra != NULL && i < head->extra->len; i++)
				session_send(s, g_ptr_array_index(head->extra, i));
			out_frame_free(head);
		}
		if (!g_queue_is_empty(&s->outq))
			break;
		d = g_queue_pop_head(&s->deferred);
		if (d == NULL)
			break;
		if (s->nick == NULL) {
			/* came while a hello's nick claim was in flight, which failed */
			if (s->hub != NULL && !s->closing)
				handle_before_hello(s->hub, s, d);
		} else if (d->frame != NULL)
			session_send(s, d->frame);
		else if (s->hub != NULL && !s->closing)
			handle_request(s->hub, s, d->req);
		deferred_free(d);
	}
	s->pumping = FALSE;
}

static void
session_fill_place(Session *s, OutFrame *place, const gchar *frame)
{
	place->frame = g_strdup(frame);
	session_pump(s);
}

static void
session_close(Session *s, gushort code, const gchar *reason)
{
	codechat_debug(CODECHAT_LOG_FIELDS(.peer = s->peer, .nick = s->nick),
		       "session %u (%s): closing with %u: %s",
		       s->serial,
		       s->peer,
		       code,
		       reason != NULL ? reason : "");
	if (session_is_open(s))
		codechat_ws_conn_close(s->conn, code, reason);
	if (s->hub != NULL)
		hub_session_leave(s->hub, s);
}

/*
 * A session whose unwritten frames passed --max-outbound-bytes.  It
 * leaves the hub at once (its rooms see it quit) and gets nothing more:
 * what waits unwritten is dropped but for the frame in progress, which
 * the close frame (1013) follows.  A peer that does not read even that
 * far is cut off after a while.  The client reconnects and catches up
 * with "since".
 */
static void
session_close_slow(Session *s)
{
	codechat_debug(CODECHAT_LOG_FIELDS(.peer = s->peer, .nick = s->nick),
		       "session %u (%s): closing with %u: reading too slowly",
		       s->serial,
		       s->peer,
		       CODECHAT_CLOSE_TRY_AGAIN_LATER);
	s->slow = TRUE;
	if (s->hub != NULL)
		s->hub->metrics->slow_readers_closed++;
	codechat_ws_conn_close_now(s->conn, CODECHAT_CLOSE_TRY_AGAIN_LATER, "reading too slowly");
	if (s->hub != NULL)
		hub_session_leave(s->hub, s);
}

static void
session_send_error(Session *s, const GError *error, const gchar *ref)
{
	g_autofree gchar *frame = codechat_error_frame(error, ref);
	codechat_debug(CODECHAT_LOG_FIELDS(.peer = s->peer, .nick = s->nick),
		       "session %u (%s): error %s: %s",
		       s->serial,
		       s->peer,
		       codechat_error_to_code(error->code),
		       error->message);
	if (s->hub != NULL)
		codechat_metrics_count_error(s->hub->metrics, error);
	session_reply(s, frame);
}

static void
session_send_error_literal(Session *s, gint code, const gchar *message, const gchar *ref)
{
	g_autoptr(GError) error = g_error_new_literal(CODECHAT_ERROR, code, message);
	session_send_error(s, error, ref);
}

/* a token bucket: @rate tokens a second, at most @burst saved */
static gboolean
take_token(gdouble *tokens, gint64 *refill_us, const CodechatHubConfig *config)
{
	gint64 now;

	if (config->rate == 0)
		return TRUE;
	now = g_get_monotonic_time();
	*tokens += (gdouble)(now - *refill_us) * config->rate / G_USEC_PER_SEC;
	if (*tokens > config->burst)
		*tokens = config->burst;
	*refill_us = now;
	if (*tokens < 1.0)
		return FALSE;
	*tokens -= 1.0;
	return TRUE;
}

/* replies */

static JsonBuilder *
reply_begin(const gchar *type, const gchar *ref)
{
	JsonBuilder *builder = json_builder_new_immutable();

	json_builder_begin_object(builder);
	json_builder_set_member_name(builder, "type");
	json_builder_add_string_value(builder, type);
	if (ref != NULL) {
		json_builder_set_member_name(builder, "ref");
		json_builder_add_string_value(builder, ref);
	}
	return builder;
}

static void
reply_send(Session *s, JsonBuilder *builder)
{
	g_autofree gchar *frame = NULL;

	json_builder_end_object(builder);
	frame = codechat_builder_to_string(builder);
	session_reply(s, frame);
}

static void
builder_add_string(JsonBuilder *builder, const gchar *name, const gchar *value)
{
	json_builder_set_member_name(builder, name);
	json_builder_add_string_value(builder, value);
}

static void
builder_add_int(JsonBuilder *builder, const gchar *name, gint64 value)
{
	json_builder_set_member_name(builder, name);
	json_builder_add_int_value(builder, value);
}

/* rooms */

static void
room_free(Room *room)
{
	g_ptr_array_unref(room->members);
	g_free(room->name);
	g_free(room);
}

static Room *
hub_ensure_room(CodechatHub *self, const gchar *name)
{
	Room *room = g_hash_table_lookup(self->rooms, name);

	if (room == NULL) {
		room = g_new0(Room, 1);
		room->name = g_strdup(name);
		room->members = g_ptr_array_new();
		g_hash_table_insert(self->rooms, room->name, room);
	}
	return room;
}

static gboolean
room_has_member(Room *room, Session *s)
{
	/* a session is in a few rooms, a room may have thousands of members */
	return room != NULL && g_ptr_array_find(s->rooms, room, NULL);
}

/*
 * One serialization, the same bytes to every member but @except.  A
 * member closed as a slow reader leaves the room (and the room may go)
 * in the middle of the loop, so it runs over a copy of the members, each
 * held; @room is not touched after it.  A member whose replay (join with
 * since) is still being read gets nothing yet: a message (@id > 0) waits
 * for the end of the replay, and a presence event is dropped, since
 * "joined" will list the members as they are then.
 */
static void
room_broadcast(Room *room, const gchar *text, guint64 id, Session *except)
{
	g_autoptr(CodechatWsFrame) frame = codechat_ws_frame_new_text(text, strlen(text));
	Session *on_stack[128];
	guint n = room->members->len;
	Session **members = n <= G_N_ELEMENTS(on_stack) ? on_stack : g_new(Session *, n);

	for (guint i = 0; i < n; i++)
		members[i] = session_ref(g_ptr_array_index(room->members, i));
	for (guint i = 0; i < n; i++) {
		Session *member = members[i];

		if (member == except)
			continue;
		if (member->replay_room != NULL && member->replay_room == room) {
			if (id > 0) {
				LiveFrame *live = g_new0(LiveFrame, 1);
				live->id = id;
				live->frame = g_strdup(text);
				g_ptr_array_add(member->held, live);
			}
			continue;
		}
		session_send_frame(member, frame);
	}
	for (guint i = 0; i < n; i++)
		session_unref(members[i]);
	if (members != on_stack)
		g_free(members);
}

/* @nick's presence @event to the members of @room but @except */
static void
room_send_presence_of(Room *room, const gchar *nick, const gchar *event, Session *except)
{
	g_autoptr(JsonBuilder) builder = reply_begin("presence", NULL);
	g_autofree gchar *frame = NULL;

	builder_add_string(builder, "room", room->name);
	builder_add_string(builder, "nick", nick);
	builder_add_string(builder, "event", event);
	json_builder_end_object(builder);
	frame = codechat_builder_to_string(builder);
	room_broadcast(room, frame, 0, except);
}

static void
room_send_presence(Room *room, Session *s, const gchar *event)
{
	room_send_presence_of(room, s->nick, event, s);
}

/* takes @s out of @room, tells the others, and drops the room when empty */
static void
hub_leave_room(CodechatHub *self, Room *room, Session *s, const gchar *event)
{
	g_ptr_array_remove(room->members, s);
	g_ptr_array_remove(s->rooms, room);
	if (s->replay_room == room) {
		s->replay_room = NULL;
		g_clear_pointer(&s->held, g_ptr_array_unref);
	}
	room_send_presence(room, s, event);
	/* a quit leaves every room in the cluster at once: hub_session_leave() */
	if (self->cluster != NULL && s->claimed && g_strcmp0(event, "quit") != 0)
		codechat_cluster_part(self->cluster, room->name, s->nick);
	g_signal_emit(self, signals[SIGNAL_MEMBER_LEFT], 0, room->name, s->nick);
	codechat_info(CODECHAT_LOG_FIELDS(.room = room->name, .nick = s->nick),
		      "%s left %s (%s)",
		      s->nick,
		      room->name,
		      event);
	if (room->members->len == 0)
		g_hash_table_remove(self->rooms, room->name);
}

/* requests */

/* with accounts (or --listen beyond loopback without --allow-anonymous),
 * every hello needs the token of its nick */
static gboolean
hub_needs_token(CodechatHub *self)
{
	return self->require_auth ||
	       (self->accounts != NULL && codechat_accounts_get_n_accounts(self->accounts) > 0);
}

/* auth-failed, then close 1008 (PROTOCOL.md): the same answer for an
 * unknown nick and a wrong token, so that it tells nothing about accounts */
static void
session_refuse_auth(Session *s, const gchar *message, const gchar *ref)
{
	session_send_error_literal(s, CODECHAT_ERROR_AUTH_FAILED, message, ref);
	session_close(s, SOUP_WEBSOCKET_CLOSE_POLICY_VIOLATION, "authentication failed");
}

/* the error frame for a reply that fills a place, counted like any error sent */
static gchar *
hub_error_frame(CodechatHub *self, const GError *error, const gchar *ref);

/*
 * The nick is @s's (no other session has it, here or, with a cluster, on
 * another daemon): remembered, and the welcome frame returned; else the
 * error frame, and @s still has no nick.  @fold is taken unless @s
 * already holds it (its claim in the cluster was in flight).
 */
static gchar *
hub_hello_accept(CodechatHub *self,
		 Session *s,
		 const gchar *nick,
		 gchar **fold,
		 const gchar *account_hash,
		 const gchar *ref)
{
	g_autoptr(JsonBuilder) builder = NULL;
	g_autoptr(GError) error = NULL;

	if (!codechat_store_remember_nick(self->store, nick, &error)) {
		g_autoptr(GError) reply = g_error_new_literal(CODECHAT_ERROR,
							      CODECHAT_ERROR_INTERNAL,
							      "the server cannot store the nick");
		codechat_warning(CODECHAT_LOG_FIELDS(.nick = nick, .peer = s->peer),
				 "cannot remember nick %s: %s",
				 nick,
				 error->message);
		return hub_error_frame(self, reply, ref);
	}
	s->nick = g_strdup(nick);
	if (s->nick_fold == NULL)
		s->nick_fold = g_steal_pointer(fold);
	s->account_hash = g_strdup(account_hash);
	g_hash_table_insert(self->nicks, s->nick_fold, s);
	hub_hello_done(self, s);
	codechat_info(CODECHAT_LOG_FIELDS(.peer = s->peer, .nick = s->nick),
		      "%s is %s",
		      s->peer,
		      s->nick);

	builder = reply_begin("welcome", ref);
	builder_add_string(builder, "nick", s->nick);
	builder_add_string(builder, "server", codechat_server_string());
	builder_add_string(builder, "epoch", codechat_store_get_epoch(self->store));
	json_builder_set_member_name(builder, "limits");
	json_builder_begin_object(builder);
	builder_add_int(builder, "max_text", (gint64)self->config.max_text);
	builder_add_int(builder, "rate", self->config.rate);
	builder_add_int(builder, "burst", self->config.burst);
	json_builder_end_object(builder);
	json_builder_end_object(builder);
	return codechat_builder_to_string(builder);
}

typedef struct {
	CodechatHub *hub;    /* (owned) */
	Session *s;	     /* (owned) */
	gchar *nick;	     /* (owned) */
	gchar *account_hash; /* (owned) (nullable) */
	gchar *ref;	     /* (owned) (nullable) */
	OutFrame *place;     /* (unowned) in the session's queue */
} HelloData;

static void
hello_data_free(HelloData *data)
{
	g_object_unref(data->hub);
	session_unref(data->s);
	g_free(data->nick);
	g_free(data->account_hash);
	g_free(data->ref);
	g_free(data);
}

/* the cluster answered the claim of the hello's nick */
static void
hello_claimed_cb(gboolean claimed, const GError *error, gpointer user_data)
{
	HelloData *data = user_data;
	CodechatHub *self = data->hub;
	Session *s = data->s;
	g_autofree gchar *frame = NULL;

	s->claiming = FALSE;
	/* the session ended meanwhile (nobody waits for its place): the nick
	 * goes back to the cluster, unless another session of this daemon
	 * claimed it since, since claims are per daemon */
	if (s->hub == NULL || s->closing) {
		g_autofree gchar *fold = codechat_nick_fold(data->nick);

		if (claimed && self->cluster != NULL && !g_hash_table_contains(self->nicks, fold))
			codechat_cluster_release_nick(self->cluster, data->nick);
		hello_data_free(data);
		return;
	}
	if (claimed) {
		frame = hub_hello_accept(self, s, data->nick, NULL, data->account_hash, data->ref);
		if (s->nick != NULL)
			s->claimed = TRUE;
		else if (self->cluster != NULL)
			codechat_cluster_release_nick(self->cluster, data->nick);
	} else {
		g_autoptr(GError) reply = NULL;

		if (error != NULL) {
			codechat_warning(CODECHAT_LOG_FIELDS(.nick = data->nick, .peer = s->peer),
					 "cannot claim nick %s in the cluster: %s",
					 data->nick,
					 error->message);
			reply = g_error_new_literal(CODECHAT_ERROR,
						    CODECHAT_ERROR_OVERLOADED,
						    "the server cannot reach the other servers, "
						    "try again");
		} else {
			reply = g_error_new(CODECHAT_ERROR,
					    CODECHAT_ERROR_NICK_TAKEN,
					    "nick %s is already connected",
					    data->nick);
		}
		frame = hub_error_frame(self, reply, data->ref);
	}
	/* a refused hello may be tried again with another nick */
	if (s->nick == NULL && s->nick_fold != NULL) {
		if (g_hash_table_lookup(self->nicks, s->nick_fold) == s)
			g_hash_table_remove(self->nicks, s->nick_fold);
		g_clear_pointer(&s->nick_fold, g_free);
	}
	session_fill_place(s, data->place, frame);
	hello_data_free(data);
}

/*
 * With other daemons on the same Redis, the nick must be free there too:
 * the welcome (or nick-taken) waits for the cluster.  Meanwhile the nick
 * is held here, so that a second session of this daemon cannot claim it
 * too, the reply keeps its place and the requests behind the hello wait
 * (session_message_cb()).
 */
static void
hub_claim_nick(CodechatHub *self,
	       Session *s,
	       CodechatRequest *req,
	       gchar *fold,
	       const gchar *account_hash)
{
	HelloData *data = g_new0(HelloData, 1);

	data->hub = g_object_ref(self);
	data->s = session_ref(s);
	data->nick = g_strdup(req->nick);
	data->account_hash = g_strdup(account_hash);
	data->ref = g_strdup(req->ref);
	data->place = session_hold_place(s);
	s->nick_fold = fold;
	g_hash_table_insert(self->nicks, s->nick_fold, s);
	s->claiming = TRUE;
	codechat_cluster_claim_nick(self->cluster, req->nick, hello_claimed_cb, data);
}

static void
handle_hello(CodechatHub *self, Session *s, CodechatRequest *req)
{
	g_autofree gchar *frame = NULL;
	g_autofree gchar *fold = codechat_nick_fold(req->nick);
	const gchar *account_hash = NULL;

	/* an account added or removed a moment ago counts already */
	if (self->accounts != NULL)
		codechat_accounts_refresh(self->accounts);
	if (hub_needs_token(self)) {
		if (req->token == NULL || req->token[0] == '\0') {
			session_refuse_auth(s, "this server needs a token for your nick", req->ref);
			return;
		}
		if (self->accounts != NULL)
			account_hash =
			    codechat_accounts_authenticate(self->accounts, req->nick, req->token);
		if (account_hash == NULL) {
			codechat_info(CODECHAT_LOG_FIELDS(.peer = s->peer, .nick = req->nick),
				      "%s: authentication failed for %s",
				      s->peer,
				      req->nick);
			session_refuse_auth(s,
					    "wrong token, or no account for this nick",
					    req->ref);
			return;
		}
	}
	if (g_hash_table_contains(self->nicks, fold)) {
		g_autofree gchar *msg = g_strdup_printf("nick %s is already connected", req->nick);
		session_send_error_literal(s, CODECHAT_ERROR_NICK_TAKEN, msg, req->ref);
		return;
	}
	if (self->cluster != NULL) {
		hub_claim_nick(self, s, req, g_steal_pointer(&fold), account_hash);
		return;
	}
	frame = hub_hello_accept(self, s, req->nick, &fold, account_hash, req->ref);
	session_reply(s, frame);
}

static gint
compare_names(gconstpointer a, gconstpointer b);

/*
 * The members of @name: this daemon's (@room, nullable), in join order;
 * with a cluster, also the other daemons', all sorted by nick, each once
 * (a nick is claimed by one daemon only, but a view may lag a moment).
 */
static GPtrArray *
hub_dup_members(CodechatHub *self, const gchar *name, Room *room)
{
	GPtrArray *nicks = g_ptr_array_new_with_free_func(g_free);
	g_autoptr(GPtrArray) remote = NULL;
	guint n = 0;

	for (guint i = 0; room != NULL && i < room->members->len; i++) {
		Session *member = g_ptr_array_index(room->members, i);
		g_ptr_array_add(nicks, g_strdup(member->nick));
	}
	if (self->cluster == NULL)
		return nicks;
	remote = codechat_cluster_dup_remote_members(self->cluster, name);
	for (guint i = 0; i < remote->len; i++)
		g_ptr_array_add(nicks, g_strdup(g_ptr_array_index(remote, i)));
	g_ptr_array_sort(nicks, compare_names);
	for (guint i = 0; i < nicks->len; i++) {
		if (n > 0 &&
		    g_strcmp0(g_ptr_array_index(nicks, n - 1), g_ptr_array_index(nicks, i)) == 0)
			continue;
		if (n != i) {
			gchar *tmp = nicks->pdata[n];
			nicks->pdata[n] = nicks->pdata[i];
			nicks->pdata[i] = tmp;
		}
		n++;
	}
	g_ptr_array_set_size(nicks, n);
	return nicks;
}

/* how many members @name has, here and on the other daemons */
static guint
hub_count_members(CodechatHub *self, const gchar *name, Room *room)
{
	g_autoptr(GPtrArray) nicks = NULL;

	if (self->cluster == NULL ||
	    codechat_cluster_count_remote_members(self->cluster, name) == 0)
		return room != NULL ? room->members->len : 0;
	nicks = hub_dup_members(self, name, room);
	return nicks->len;
}

static void
builder_add_members(CodechatHub *self, JsonBuilder *builder, const gchar *name, Room *room)
{
	g_autoptr(GPtrArray) nicks = hub_dup_members(self, name, room);

	json_builder_set_member_name(builder, "members");
	json_builder_begin_array(builder);
	for (guint i = 0; i < nicks->len; i++)
		json_builder_add_string_value(builder, g_ptr_array_index(nicks, i));
	json_builder_end_array(builder);
}

static void
builder_add_messages(JsonBuilder *builder, GPtrArray *msgs)
{
	json_builder_set_member_name(builder, "messages");
	json_builder_begin_array(builder);
	for (guint i = 0; i < msgs->len; i++) {
		json_builder_begin_object(builder);
		codechat_message_build(g_ptr_array_index(msgs, i), builder);
		json_builder_end_object(builder);
	}
	json_builder_end_array(builder);
}

/*
 * What a client is told when the store failed: `overloaded` when the
 * store says it is unavailable for now (a network store that lost its
 * server), so that the client tries again, else `internal` with
 * @internal_message.
 */
static GError *
hub_store_error(const GError *error, const gchar *internal_message)
{
	if (g_error_matches(error, CODECHAT_ERROR, CODECHAT_ERROR_OVERLOADED))
		return g_error_new_literal(CODECHAT_ERROR,
					   CODECHAT_ERROR_OVERLOADED,
					   "the history store is unavailable, try again");
	return g_error_new_literal(CODECHAT_ERROR, CODECHAT_ERROR_INTERNAL, internal_message);
}

/* the error frame for a reply that fills a place, counted like any error sent */
static gchar *
hub_error_frame(CodechatHub *self, const GError *error, const gchar *ref)
{
	codechat_metrics_count_error(self->metrics, error);
	return codechat_error_frame(error, ref);
}

/* @s becomes a member of @room unless it is one: the others see it join */
static void
hub_join_room(CodechatHub *self, Room *room, Session *s)
{
	if (room_has_member(room, s))
		return;
	room_send_presence(room, s, "join");
	g_ptr_array_add(room->members, s);
	g_ptr_array_add(s->rooms, room);
	if (self->cluster != NULL && s->claimed)
		codechat_cluster_join(self->cluster, room->name, s->nick);
	g_signal_emit(self, signals[SIGNAL_MEMBER_JOINED], 0, room->name, s->nick);
	codechat_info(CODECHAT_LOG_FIELDS(.room = room->name, .nick = s->nick),
		      "%s joined %s",
		      s->nick,
		      room->name);
}

static gchar *
hub_joined_frame(CodechatHub *self,
		 Room *room,
		 const gchar *ref,
		 guint64 last_id,
		 gboolean truncated)
{
	g_autoptr(JsonBuilder) builder = reply_begin("joined", ref);

	builder_add_string(builder, "room", room->name);
	builder_add_members(self, builder, room->name, room);
	builder_add_int(builder, "last_id", (gint64)last_id);
	builder_add_string(builder, "epoch", codechat_store_get_epoch(self->store));
	builder_add_string(builder, "topic", "");
	if (truncated) {
		json_builder_set_member_name(builder, "truncated");
		json_builder_add_boolean_value(builder, TRUE);
	}
	json_builder_end_object(builder);
	return codechat_builder_to_string(builder);
}

typedef struct {
	CodechatHub *hub; /* (owned) */
	Session *s;	  /* (owned) */
	gchar *ref;	  /* (owned) (nullable) */
	guint64 since;
	gboolean was_member; /* already in the room before this join */
	OutFrame *place;     /* (unowned) in the session's queue */
} JoinData;

static void
join_data_free(JoinData *data)
{
	g_object_unref(data->hub);
	session_unref(data->s);
	g_free(data->ref);
	g_free(data);
}

/*
 * The replay of a join with since was read.  The session has been a
 * member since the request, but its room's live messages were held
 * (room_broadcast()): now it gets "joined", the replay, and then the held
 * messages that the replay does not hold, so that every id comes once
 * and in order whenever the store read its page.
 */
static void
join_replay_cb(GPtrArray *page, gboolean more, const GError *error, gpointer user_data)
{
	JoinData *data = user_data;
	CodechatHub *self = data->hub;
	Session *s = data->s;
	g_autoptr(GPtrArray) live = NULL;
	g_autofree gchar *joined = NULL;
	Room *room = s->replay_room;
	guint64 last_id;

	/* the session left (or the hub let it go) meanwhile: nobody to tell */
	if (s->hub == NULL || s->closing || room == NULL) {
		join_data_free(data);
		return;
	}
	live = g_steal_pointer(&s->held);
	s->replay_room = NULL;

	if (error != NULL) {
		g_autoptr(GError) reply =
		    hub_store_error(error, "the server cannot read the history");
		g_autofree gchar *err_frame = hub_error_frame(self, reply, data->ref);

		codechat_warning(CODECHAT_LOG_FIELDS(.room = room->name, .nick = s->nick),
				 "cannot read the history of %s: %s",
				 room->name,
				 error->message);
		/* a failed resume leaves the session as it was: out of a room
		 * it was not in (the others see it part again), so that the
		 * client, told the error, joins again later rather than
		 * believing it missed nothing */
		if (!data->was_member)
			hub_leave_room(self, room, s, "part");
		session_fill_place(s, data->place, err_frame);
		join_data_free(data);
		return;
	}

	/* everything up to last_id came in the replay (or is at most since),
	 * everything above it comes live: the newest replayed id, else what
	 * the store holds but at most since, since the store may already
	 * hold messages of the held ones that the page did not see */
	if (page->len > 0)
		last_id = ((CodechatMessage *)g_ptr_array_index(page, page->len - 1))->id;
	else
		last_id = MIN(codechat_store_get_last_id(self->store, room->name), data->since);
	joined = hub_joined_frame(self, room, data->ref, last_id, more);
	data->place->extra = g_ptr_array_new_with_free_func(g_free);
	for (guint i = 0; i < page->len; i++)
		g_ptr_array_add(data->place->extra,
				codechat_message_serialize(g_ptr_array_index(page, i), NULL));
	for (guint i = 0; i < live->len; i++) {
		LiveFrame *held = g_ptr_array_index(live, i);
		if (held->id > last_id)
			g_ptr_array_add(data->place->extra, g_steal_pointer(&held->frame));
	}
	session_fill_place(s, data->place, joined);
	join_data_free(data);
}

static void
handle_join(CodechatHub *self, Session *s, CodechatRequest *req)
{
	g_autofree gchar *joined = NULL;
	Room *room = hub_ensure_room(self, req->room);
	JoinData *data;

	if (!req->has_since) {
		hub_join_room(self, room, s);
		joined = hub_joined_frame(self,
					  room,
					  req->ref,
					  codechat_store_get_last_id(self->store, room->name),
					  FALSE);
		session_reply(s, joined);
		return;
	}

	/* the newest page of what was missed (more than a page is paged back
	 * with history), read while the room's live traffic for the session
	 * is held; requests behind the join wait, says too (see
	 * session_message_cb()), so that nothing of the session's own falls
	 * between the replay and what was held */
	data = g_new0(JoinData, 1);
	data->hub = g_object_ref(self);
	data->s = session_ref(s);
	data->ref = g_strdup(req->ref);
	data->since = req->since;
	data->was_member = room_has_member(room, s);
	hub_join_room(self, room, s);
	s->replay_room = room;
	s->held = g_ptr_array_new_with_free_func((GDestroyNotify)live_frame_free);
	data->place = session_hold_place(s);
	codechat_store_query_async(self->store,
				   req->room,
				   req->since,
				   CODECHAT_STORE_NO_BOUND,
				   CODECHAT_MAX_PAGE,
				   TRUE,
				   join_replay_cb,
				   data);
}

static void
handle_part(CodechatHub *self, Session *s, CodechatRequest *req)
{
	g_autoptr(JsonBuilder) builder = NULL;
	Room *room = g_hash_table_lookup(self->rooms, req->room);

	if (!room_has_member(room, s)) {
		session_send_error_literal(s,
					   CODECHAT_ERROR_NOT_JOINED,
					   "you have not joined that room",
					   req->ref);
		return;
	}
	hub_leave_room(self, room, s, "part");
	builder = reply_begin("parted", req->ref);
	builder_add_string(builder, "room", req->room);
	reply_send(s, builder);
}

typedef struct {
	CodechatHub *hub; /* (owned) */
	Session *sender;  /* (owned) */
	gchar *ref;	  /* (owned) (nullable) */
	OutFrame *place;  /* (unowned) in the sender's queue */
	/* while the store checks the nick of a direct message */
	gchar *conv;	      /* (owned) (nullable) */
	CodechatMessage *msg; /* (owned) (nullable) */
} SayData;

static void
say_data_free(SayData *data)
{
	g_object_unref(data->hub);
	session_unref(data->sender);
	g_free(data->ref);
	g_free(data->conv);
	g_clear_pointer(&data->msg, codechat_message_unref);
	g_free(data);
}

static GError *
unknown_nick_error(const gchar *nick)
{
	return g_error_new(CODECHAT_ERROR,
			   CODECHAT_ERROR_UNKNOWN_NICK,
			   "nobody called %s has ever connected",
			   nick);
}

/* the unknown-nick reply for @nick */
static gchar *
unknown_nick_frame(CodechatHub *self, const gchar *nick, const gchar *ref)
{
	g_autoptr(GError) error = unknown_nick_error(nick);

	return hub_error_frame(self, error, ref);
}

/* a stored message to everyone who gets it but @sender (whose copy is
 * its acknowledgement), then to D-Bus and the notifier; returns the frame.
 * Without a sender (D-Bus, another daemon) a direct message goes to the
 * sessions of both its nicks. */
static gchar *
hub_deliver(CodechatHub *self, CodechatMessage *msg, Session *sender)
{
	gchar *frame = codechat_message_serialize(msg, NULL);

	if (msg->room != NULL) {
		Room *room = g_hash_table_lookup(self->rooms, msg->room);
		if (room != NULL)
			room_broadcast(room, frame, msg->id, sender);
	} else {
		g_autofree gchar *fold = codechat_nick_fold(msg->to);
		Session *peer = g_hash_table_lookup(self->nicks, fold);
		/* a session whose hello waits for the cluster has no nick yet */
		if (peer != NULL && peer->nick == NULL)
			peer = NULL;
		if (peer != NULL && peer != sender)
			session_send(peer, frame);
		if (sender == NULL && msg->from != NULL) {
			g_autofree gchar *from_fold = codechat_nick_fold(msg->from);
			Session *author = g_hash_table_lookup(self->nicks, from_fold);
			if (author != NULL && author->nick != NULL && author != peer)
				session_send(author, frame);
		}
	}
	g_signal_emit(self, signals[SIGNAL_MESSAGE_POSTED], 0, msg);
	return frame;
}

static void
say_stored_cb(CodechatMessage *msg, const GError *error, gpointer user_data)
{
	SayData *data = user_data;
	CodechatHub *self = data->hub;
	g_autofree gchar *frame = NULL;
	g_autofree gchar *own = NULL;

	if (error != NULL) {
		g_autoptr(GError) reply =
		    hub_store_error(error, "the server could not store the message");
		g_autofree gchar *err_frame = codechat_error_frame(reply, data->ref);
		codechat_debug(CODECHAT_LOG_FIELDS(.room = msg->room, .nick = msg->from),
			       "message from %s not stored: %s",
			       msg->from,
			       error->message);
		codechat_metrics_count_error(self->metrics, reply);
		session_fill_place(data->sender, data->place, err_frame);
		say_data_free(data);
		return;
	}

	self->metrics->messages_stored++;
	frame = hub_deliver(self, msg, data->sender);
	if (data->ref != NULL)
		own = codechat_message_serialize(msg, data->ref);
	/* the sender's copy is its acknowledgement, also if it parted since */
	session_fill_place(data->sender, data->place, own != NULL ? own : frame);
	say_data_free(data);
}

/* a direct message to a nick this daemon had not heard of, once the
 * shared store answered: stored, or refused with unknown-nick */
static void
say_nick_checked_cb(gboolean known, const GError *error, gpointer user_data)
{
	SayData *data = user_data;
	CodechatHub *self = data->hub;
	g_autofree gchar *frame = NULL;
	g_autoptr(GError) reply = NULL;

	if (data->sender->hub == NULL) {
		say_data_free(data);
		return;
	}
	if (known) {
		g_autofree gchar *conv = g_steal_pointer(&data->conv);
		g_autoptr(CodechatMessage) msg = g_steal_pointer(&data->msg);

		codechat_store_append(self->store, conv, msg, say_stored_cb, data);
		return;
	}
	if (error != NULL) {
		reply = hub_store_error(error, "the server cannot look the nick up");
		frame = hub_error_frame(self, reply, data->ref);
	} else {
		frame = unknown_nick_frame(self, data->msg->to, data->ref);
	}
	session_fill_place(data->sender, data->place, frame);
	say_data_free(data);
}

static void
handle_say(CodechatHub *self, Session *s, CodechatRequest *req)
{
	g_autoptr(CodechatMessage) msg = NULL;
	g_autofree gchar *conv = NULL;
	gboolean check_nick = FALSE;
	SayData *data;

	if (req->room != NULL) {
		Room *room = g_hash_table_lookup(self->rooms, req->room);
		if (!room_has_member(room, s)) {
			session_send_error_literal(s,
						   CODECHAT_ERROR_NOT_JOINED,
						   "join the room before you say something in it",
						   req->ref);
			return;
		}
		conv = g_strdup(req->room);
	} else {
		if (!codechat_store_knows_nick(self->store, req->to)) {
			/* a store shared with other daemons asks before it says no */
			if (codechat_store_can_check_nick(self->store)) {
				check_nick = TRUE;
			} else {
				g_autoptr(GError) unknown = unknown_nick_error(req->to);

				session_send_error(s, unknown, req->ref);
				return;
			}
		}
		conv = codechat_store_direct_key(s->nick, req->to);
	}
	if (!take_token(&s->tokens, &s->refill_us, &self->config)) {
		g_autofree gchar *text =
		    g_strdup_printf("slow down: %u messages per second", self->config.rate);
		self->metrics->rate_limited++;
		session_send_error_literal(s, CODECHAT_ERROR_RATE_LIMITED, text, req->ref);
		return;
	}

	msg = codechat_message_new();
	msg->room = g_steal_pointer(&req->room);
	msg->to = g_steal_pointer(&req->to);
	msg->from = g_strdup(s->nick);
	msg->ts = g_get_real_time();
	msg->kind = req->kind;
	msg->text = g_steal_pointer(&req->text);
	msg->lang = g_steal_pointer(&req->lang);
	msg->filename = g_steal_pointer(&req->filename);

	data = g_new0(SayData, 1);
	data->hub = g_object_ref(self);
	data->sender = session_ref(s);
	data->ref = g_steal_pointer(&req->ref);
	data->place = session_hold_place(s);
	if (check_nick) {
		data->conv = g_steal_pointer(&conv);
		data->msg = g_steal_pointer(&msg);
		codechat_store_check_nick(self->store, data->msg->to, say_nick_checked_cb, data);
		return;
	}
	codechat_store_append(self->store, conv, msg, say_stored_cb, data);
}

typedef struct {
	CodechatHub *hub; /* (owned) */
	Session *s;	  /* (owned) */
	gchar *ref;	  /* (owned) (nullable) */
	gchar *room;	  /* (owned) (nullable) */
	gchar *with;	  /* (owned) (nullable) for a direct conversation */
	OutFrame *place;  /* (unowned) in the session's queue */
	gchar *conv;	  /* (owned) */
	guint limit;
	gboolean has_after;
	guint64 after;
	guint64 before;
} HistoryData;

static void
history_data_free(HistoryData *data)
{
	g_object_unref(data->hub);
	session_unref(data->s);
	g_free(data->ref);
	g_free(data->room);
	g_free(data->with);
	g_free(data->conv);
	g_free(data);
}

static void
history_read_cb(GPtrArray *page, gboolean more, const GError *error, gpointer user_data)
{
	HistoryData *data = user_data;
	CodechatHub *self = data->hub;
	Session *s = data->s;
	g_autoptr(JsonBuilder) builder = NULL;
	g_autofree gchar *frame = NULL;

	/* the hub let the session go meanwhile; its queue goes with it */
	if (s->hub == NULL) {
		history_data_free(data);
		return;
	}
	if (error != NULL) {
		g_autoptr(GError) reply =
		    hub_store_error(error, "the server cannot read the history");

		codechat_warning(CODECHAT_LOG_FIELDS(.room = data->room, .nick = s->nick),
				 "cannot read the history of %s: %s",
				 data->room != NULL ? data->room : data->with,
				 error->message);
		frame = hub_error_frame(self, reply, data->ref);
		session_fill_place(s, data->place, frame);
		history_data_free(data);
		return;
	}

	builder = reply_begin("history", data->ref);
	if (data->room != NULL)
		builder_add_string(builder, "room", data->room);
	else
		builder_add_string(builder, "with", data->with);
	builder_add_messages(builder, page);
	json_builder_set_member_name(builder, "more");
	json_builder_add_boolean_value(builder, more);
	json_builder_end_object(builder);
	frame = codechat_builder_to_string(builder);
	session_fill_place(s, data->place, frame);
	history_data_free(data);
}

static void
history_query(CodechatHub *self, HistoryData *data);

/* history with a nick this daemon had not heard of, once the shared store
 * answered */
static void
history_nick_checked_cb(gboolean known, const GError *error, gpointer user_data)
{
	HistoryData *data = user_data;
	CodechatHub *self = data->hub;
	g_autofree gchar *frame = NULL;
	g_autoptr(GError) reply = NULL;

	if (data->s->hub == NULL) {
		history_data_free(data);
		return;
	}
	if (known) {
		history_query(self, data);
		return;
	}
	if (error != NULL) {
		reply = hub_store_error(error, "the server cannot look the nick up");
		frame = hub_error_frame(self, reply, data->ref);
	} else {
		frame = unknown_nick_frame(self, data->with, data->ref);
	}
	session_fill_place(data->s, data->place, frame);
	history_data_free(data);
}

/* the reply takes its place in the session's order when the store answers */
static void
handle_history(CodechatHub *self, Session *s, CodechatRequest *req)
{
	g_autofree gchar *conv = NULL;
	guint limit = req->limit > 0 ? req->limit : CODECHAT_DEFAULT_PAGE;
	gboolean check_nick = FALSE;
	HistoryData *data;

	if (req->room != NULL) {
		conv = g_strdup(req->room);
	} else {
		if (!codechat_store_knows_nick(self->store, req->with)) {
			/* a store shared with other daemons asks before it says no */
			if (codechat_store_can_check_nick(self->store)) {
				check_nick = TRUE;
			} else {
				g_autoptr(GError) unknown = unknown_nick_error(req->with);

				session_send_error(s, unknown, req->ref);
				return;
			}
		}
		conv = codechat_store_direct_key(s->nick, req->with);
	}

	data = g_new0(HistoryData, 1);
	data->hub = g_object_ref(self);
	data->s = session_ref(s);
	data->ref = g_strdup(req->ref);
	data->room = g_strdup(req->room);
	data->with = g_strdup(req->with);
	data->place = session_hold_place(s);
	data->conv = g_steal_pointer(&conv);
	data->limit = limit;
	data->has_after = req->has_after;
	data->after = req->after;
	data->before = req->has_before ? req->before : CODECHAT_STORE_NO_BOUND;
	if (check_nick)
		codechat_store_check_nick(self->store, req->with, history_nick_checked_cb, data);
	else
		history_query(self, data);
}

/* the page asked for: after an id, or the newest before one */
static void
history_query(CodechatHub *self, HistoryData *data)
{
	if (data->has_after)
		codechat_store_query_async(self->store,
					   data->conv,
					   data->after,
					   CODECHAT_STORE_NO_BOUND,
					   data->limit,
					   FALSE,
					   history_read_cb,
					   data);
	else
		codechat_store_query_async(self->store,
					   data->conv,
					   0,
					   data->before,
					   data->limit,
					   TRUE,
					   history_read_cb,
					   data);
}

static void
handle_who(CodechatHub *self, Session *s, CodechatRequest *req)
{
	g_autoptr(JsonBuilder) builder = reply_begin("members", req->ref);

	builder_add_string(builder, "room", req->room);
	builder_add_members(self, builder, req->room, g_hash_table_lookup(self->rooms, req->room));
	reply_send(s, builder);
}

static GPtrArray *
hub_room_names(CodechatHub *self)
{
	g_autoptr(GPtrArray) names = codechat_store_list_rooms(self->store);
	GHashTableIter iter;
	const gchar *name;

	/* and the rooms with members on other daemons only */
	if (self->cluster != NULL) {
		g_autoptr(GPtrArray) remote = codechat_cluster_dup_remote_rooms(self->cluster);
		for (guint i = 0; i < remote->len; i++) {
			name = g_ptr_array_index(remote, i);
			if (!g_ptr_array_find_with_equal_func(names, name, g_str_equal, NULL))
				g_ptr_array_add(names, g_strdup(name));
		}
	}

	/* rooms with members or with messages, each once, by name */
	g_hash_table_iter_init(&iter, self->rooms);
	while (g_hash_table_iter_next(&iter, (gpointer *)&name, NULL)) {
		if (!g_ptr_array_find_with_equal_func(names, name, g_str_equal, NULL))
			g_ptr_array_add(names, g_strdup(name));
	}
	g_ptr_array_sort(names, compare_names);
	return g_steal_pointer(&names);
}

static gint
compare_names(gconstpointer a, gconstpointer b)
{
	return g_strcmp0(*(const gchar *const *)a, *(const gchar *const *)b);
}

static void
handle_rooms(CodechatHub *self, Session *s, CodechatRequest *req)
{
	g_autoptr(JsonBuilder) builder = reply_begin("rooms", req->ref);
	g_autoptr(GPtrArray) names = hub_room_names(self);

	json_builder_set_member_name(builder, "rooms");
	json_builder_begin_array(builder);
	for (guint i = 0; i < names->len; i++) {
		const gchar *room_name = g_ptr_array_index(names, i);
		Room *room = g_hash_table_lookup(self->rooms, room_name);
		json_builder_begin_object(builder);
		builder_add_string(builder, "name", room_name);
		builder_add_int(builder, "members", hub_count_members(self, room_name, room));
		builder_add_int(builder,
				"last_id",
				(gint64)codechat_store_get_last_id(self->store, room_name));
		builder_add_string(builder, "topic", "");
		json_builder_end_object(builder);
	}
	json_builder_end_array(builder);
	reply_send(s, builder);
}

static void
handle_request(CodechatHub *self, Session *s, CodechatRequest *req)
{
	switch (req->type) {
	case CODECHAT_REQUEST_HELLO:
		session_send_error_literal(s,
					   CODECHAT_ERROR_BAD_REQUEST,
					   "hello was already sent",
					   req->ref);
		break;
	case CODECHAT_REQUEST_JOIN:
		handle_join(self, s, req);
		break;
	case CODECHAT_REQUEST_PART:
		handle_part(self, s, req);
		break;
	case CODECHAT_REQUEST_SAY:
		handle_say(self, s, req);
		break;
	case CODECHAT_REQUEST_HISTORY:
		handle_history(self, s, req);
		break;
	case CODECHAT_REQUEST_WHO:
		handle_who(self, s, req);
		break;
	case CODECHAT_REQUEST_ROOMS:
		handle_rooms(self, s, req);
		break;
	case CODECHAT_REQUEST_PING: {
		g_autoptr(JsonBuilder) builder = reply_begin("pong", req->ref);
		reply_send(s, builder);
		break;
	}
	default:
		g_assert_not_reached();
	}
}

/* a request that waited for a hello's nick claim that failed: as if it
 * came before any hello (session_message_cb()) */
static void
handle_before_hello(CodechatHub *self, Session *s, Deferred *d)
{
	if (d->req != NULL && d->req->type == CODECHAT_REQUEST_HELLO) {
		handle_hello(self, s, d->req);
		return;
	}
	if (d->frame != NULL && !d->before_welcome) {
		session_send(s, d->frame);
		return;
	}
	session_send_error_literal(s,
				   CODECHAT_ERROR_NOT_AUTHENTICATED,
				   "the first request must be hello",
				   d->req != NULL ? d->req->ref : d->ref);
	session_close(s, SOUP_WEBSOCKET_CLOSE_POLICY_VIOLATION, "hello first");
}

/* connection signals */

static void
session_message_cb(CodechatWsConn *conn,
		   gboolean text,
		   const gchar *data,
		   gsize len,
		   gpointer user_data)
{
	Session *s = user_data;
	CodechatHub *self = s->hub;
	g_autoptr(CodechatRequest) req = NULL;
	g_autoptr(GError) error = NULL;
	g_autofree gchar *ref = NULL;
	gint req_type = -1;

	if (self == NULL || s->closing)
		return;
	s->last_seen_us = g_get_monotonic_time();
	if (!text) {
		session_close(s,
			      SOUP_WEBSOCKET_CLOSE_UNSUPPORTED_DATA,
			      "binary frames are not accepted");
		return;
	}
	/* libsoup bounds each frame, not a message made of fragments */
	if (len > self->config.max_frame) {
		session_close(s, SOUP_WEBSOCKET_CLOSE_TOO_BIG, "message too big");
		return;
	}

	req = codechat_request_parse_full(self->parser,
					  data,
					  len,
					  self->config.max_text,
					  &ref,
					  &req_type,
					  &error);
	if (s->nick == NULL && s->claiming) {
		/* the hello waits for the cluster's answer: what follows waits
		 * for it too, and is handled as after a welcome, or as before
		 * a hello if the claim failed (handle_before_hello()) */
		Deferred *d = g_new0(Deferred, 1);
		if (req != NULL) {
			d->req = g_steal_pointer(&req);
		} else {
			codechat_metrics_count_error(self->metrics, error);
			d->frame = codechat_error_frame(error, ref);
			d->before_welcome = error->code != CODECHAT_ERROR_BAD_JSON &&
					    req_type != CODECHAT_REQUEST_HELLO;
			d->ref = g_steal_pointer(&ref);
		}
		g_queue_push_tail(&s->deferred, d);
		return;
	}
	if (s->nick == NULL) {
		/* before hello: a broken hello or broken JSON is answered and
		 * may be tried again; anything else ends the session */
		if (req == NULL && (error->code == CODECHAT_ERROR_BAD_JSON ||
				    req_type == CODECHAT_REQUEST_HELLO)) {
			session_send_error(s, error, ref);
			return;
		}
		if (req == NULL || req->type != CODECHAT_REQUEST_HELLO) {
			session_send_error_literal(s,
						   CODECHAT_ERROR_NOT_AUTHENTICATED,
						   "the first request must be hello",
						   ref);
			session_close(s, SOUP_WEBSOCKET_CLOSE_POLICY_VIOLATION, "hello first");
			return;
		}
		handle_hello(self, s, req);
		return;
	}
	/* keep the order of replies: see session_pump(); while a replay is
	 * read (handle_join()) says wait too */
	if (!g_queue_is_empty(&s->deferred) || s->replay_room != NULL ||
	    (!g_queue_is_empty(&s->outq) && (req == NULL || req->type != CODECHAT_REQUEST_SAY))) {
		Deferred *d = g_new0(Deferred, 1);
		if (req != NULL) {
			d->req = g_steal_pointer(&req);
		} else {
			codechat_metrics_count_error(self->metrics, error);
			d->frame = codechat_error_frame(error, ref);
		}
		g_queue_push_tail(&s->deferred, d);
		return;
	}
	if (req == NULL) {
		session_send_error(s, error, ref);
		return;
	}
	handle_request(self, s, req);
}

/* the session is closing: it leaves its rooms (the others see "quit")
 * and gives its nick back at once, not when the close handshake ends */
static void
hub_session_leave(CodechatHub *self, Session *s)
{
	/* frames that libsoup still delivers are not handled any more */
	s->closing = TRUE;
	/* a closing session no longer takes a place under --max-connections */
	if (s->counted) {
		guint n = GPOINTER_TO_UINT(g_hash_table_lookup(self->per_address, s->address));
		s->counted = FALSE;
		self->n_live--;
		if (n > 1)
			g_hash_table_insert(self->per_address,
					    g_strdup(s->address),
					    GUINT_TO_POINTER(n - 1));
		else
			g_hash_table_remove(self->per_address, s->address);
	}
	while (s->rooms->len > 0)
		hub_leave_room(self, g_ptr_array_index(s->rooms, s->rooms->len - 1), s, "quit");
	/* the other daemons see it quit its rooms, and the nick is free again
	 * (a claim still in flight is given back by hello_claimed_cb()) */
	if (s->claimed) {
		s->claimed = FALSE;
		if (self->cluster != NULL)
			codechat_cluster_quit(self->cluster, s->nick);
	}
	if (s->nick_fold != NULL && g_hash_table_lookup(self->nicks, s->nick_fold) == s)
		g_hash_table_remove(self->nicks, s->nick_fold);
	hub_hello_done(self, s);
}

static void
hub_remove_session(CodechatHub *self, Session *s)
{
	if (s->hub == NULL)
		return;
	hub_session_leave(self, s);
	codechat_ws_conn_disconnect(s->conn);
	s->hub = NULL;
	codechat_info(CODECHAT_LOG_FIELDS(.peer = s->peer, .nick = s->nick),
		      "session %u (%s%s%s) gone: close code %u",
		      s->serial,
		      s->peer,
		      s->nick != NULL ? ", " : "",
		      s->nick != NULL ? s->nick : "",
		      codechat_ws_conn_get_close_code(s->conn));
	g_hash_table_remove(self->sessions, s);
	g_signal_emit(self, signals[SIGNAL_CONNECTIONS_CHANGED], 0);
	if (self->shutting_down && g_hash_table_size(self->sessions) == 0)
		g_signal_emit(self, signals[SIGNAL_DRAINED], 0);
}

static void
session_closing_cb(CodechatWsConn *conn, gpointer user_data)
{
	Session *s = user_data;
	if (s->hub != NULL)
		hub_session_leave(s->hub, s);
}

static void
session_closed_cb(CodechatWsConn *conn, gpointer user_data)
{
	Session *s = user_data;
	if (s->hub != NULL)
		hub_remove_session(s->hub, s);
}

static void
session_pong_cb(CodechatWsConn *conn, gpointer user_data)
{
	Session *s = user_data;
	s->last_seen_us = g_get_monotonic_time();
}

static const CodechatWsCallbacks session_callbacks = {
    .message = session_message_cb,
    .pong = session_pong_cb,
    .closing = session_closing_cb,
    .closed = session_closed_cb,
};

static gboolean
hub_hello_timeout_cb(gpointer user_data)
{
	CodechatHub *self = CODECHAT_HUB(user_data);
	gint64 now = g_get_monotonic_time();
	GList *head;

	self->hello_timer_id = 0;
	while ((head = g_queue_peek_head_link(&self->hello_queue)) != NULL) {
		Session *s = head->data;
		if (s->hello_deadline > now)
			break;
		hub_hello_done(self, s);
		session_send_error_literal(s,
					   CODECHAT_ERROR_NOT_AUTHENTICATED,
					   "no hello in time",
					   NULL);
		session_close(s, SOUP_WEBSOCKET_CLOSE_POLICY_VIOLATION, "no hello in time");
	}
	hub_hello_arm(self);
	return G_SOURCE_REMOVE;
}

/* one timer for the oldest session still waiting for its hello */
static void
hub_hello_arm(CodechatHub *self)
{
	GList *head = g_queue_peek_head_link(&self->hello_queue);
	gint64 wait_ms;

	if (self->hello_timer_id != 0 || head == NULL)
		return;
	wait_ms = (((Session *)head->data)->hello_deadline - g_get_monotonic_time() + 999) / 1000;
	self->hello_timer_id =
	    g_timeout_add((guint)CLAMP(wait_ms, 0, G_MAXUINT), hub_hello_timeout_cb, self);
}

static gboolean
hub_keepalive_cb(gpointer user_data)
{
	CodechatHub *self = CODECHAT_HUB(user_data);
	gint64 deadline =
	    g_get_monotonic_time() - 2 * (gint64)self->config.keepalive * G_USEC_PER_SEC;
	GHashTableIter iter;
	Session *s;

	/* one timer for every session, not a GSource each */
	g_hash_table_iter_init(&iter, self->sessions);
	while (g_hash_table_iter_next(&iter, (gpointer *)&s, NULL)) {
		if (s->last_seen_us < deadline)
			session_close(s, SOUP_WEBSOCKET_CLOSE_NORMAL, "no answer to pings");
		else if (session_is_open(s))
			codechat_ws_conn_ping(s->conn);
	}
	return G_SOURCE_CONTINUE;
}

/* the queue is in deadline order: every session waits as long, unless a
 * reload shortened the wait, so the place is almost always the tail */
static void
hub_hello_enqueue(CodechatHub *self, Session *s)
{
	GList *after = g_queue_peek_tail_link(&self->hello_queue);

	while (after != NULL && ((Session *)after->data)->hello_deadline > s->hello_deadline)
		after = after->prev;
	if (after != NULL) {
		g_queue_insert_after_link(&self->hello_queue, after, &s->hello_link);
	} else {
		/* the new head: the timer may be set for a later deadline */
		g_queue_push_head_link(&self->hello_queue, &s->hello_link);
		g_clear_handle_id(&self->hello_timer_id, g_source_remove);
	}
	hub_hello_arm(self);
}

/* reads from here on; bytes that came with the handshake are handled now */
static void
session_start(CodechatHub *self, Session *s)
{
	/* a frame over the limit is closed with 1009 by the connection; a
	 * message of many fragments: see session_message_cb().  The
	 * callbacks for bytes that came with the handshake may end the
	 * session. */
	session_ref(s);
	codechat_ws_conn_start(s->conn,
			       &session_callbacks,
			       s,
			       self->config.max_frame,
			       self->config.keepalive);
	session_unref(s);
}

void
codechat_hub_add_connection(CodechatHub *self, CodechatWsConn *conn, const gchar *peer)
{
	Session *s;

	g_return_if_fail(CODECHAT_IS_HUB(self));
	g_return_if_fail(conn != NULL);

	s = g_new0(Session, 1);
	s->ref_count = 1;
	s->hub = self;
	s->conn = codechat_ws_conn_ref(conn);
	s->peer = g_strdup(peer != NULL ? peer : "unknown");
	/* peer is ADDR:PORT, ADDR an IPv4 or IPv6 literal */
	if (strrchr(s->peer, ':') != NULL)
		s->address = g_strndup(s->peer, strrchr(s->peer, ':') - s->peer);
	else
		s->address = g_strdup(s->peer);
	s->rooms = g_ptr_array_new();
	s->tokens = self->config.burst;
	s->refill_us = s->last_seen_us = g_get_monotonic_time();
	s->serial = ++self->next_serial;

	codechat_debug(CODECHAT_LOG_FIELDS(.peer = s->peer),
		       "session %u: connection from %s",
		       s->serial,
		       s->peer);
	if (self->shutting_down ||
	    (self->config.max_connections > 0 && self->n_live >= self->config.max_connections)) {
		g_hash_table_add(self->sessions, s);
		if (!self->shutting_down)
			self->metrics->refused_max_connections++;
		codechat_message(CODECHAT_LOG_FIELDS(.peer = s->peer),
				 "refusing a session from %s: %u connections already open",
				 s->peer,
				 self->n_live);
		session_send_error_literal(s,
					   CODECHAT_ERROR_OVERLOADED,
					   "the server has too many connections; try again later",
					   NULL);
		session_close(s, CODECHAT_CLOSE_TRY_AGAIN_LATER, "too many connections");
		g_signal_emit(self, signals[SIGNAL_CONNECTIONS_CHANGED], 0);
		session_start(self, s);
		return;
	}
	if (self->config.max_per_address > 0 &&
	    GPOINTER_TO_UINT(g_hash_table_lookup(self->per_address, s->address)) >=
		self->config.max_per_address) {
		g_hash_table_add(self->sessions, s);
		self->metrics->refused_per_address++;
		codechat_message(CODECHAT_LOG_FIELDS(.peer = s->peer),
				 "refusing a session from %s: %u connections from %s already open",
				 s->peer,
				 self->config.max_per_address,
				 s->address);
		session_send_error_literal(
		    s,
		    CODECHAT_ERROR_OVERLOADED,
		    "too many connections from your address; try again later",
		    NULL);
		session_close(s, CODECHAT_CLOSE_TRY_AGAIN_LATER, "too many connections");
		g_signal_emit(self, signals[SIGNAL_CONNECTIONS_CHANGED], 0);
		session_start(self, s);
		return;
	}
	if (self->config.hello_timeout > 0) {
		/* every session waits as long: the queue is in deadline order */
		s->hello_deadline =
		    g_get_monotonic_time() + (gint64)self->config.hello_timeout * G_USEC_PER_SEC;
		s->hello_link.data = s;
		hub_hello_enqueue(self, s);
	}
	g_hash_table_add(self->sessions, s);
	s->counted = TRUE;
	self->n_live++;
	self->metrics->connections_accepted++;
	g_hash_table_insert(
	    self->per_address,
	    g_strdup(s->address),
	    GUINT_TO_POINTER(GPOINTER_TO_UINT(g_hash_table_lookup(self->per_address, s->address)) +
			     1));
	g_signal_emit(self, signals[SIGNAL_CONNECTIONS_CHANGED], 0);
	session_start(self, s);
}

guint
codechat_hub_get_n_connections(CodechatHub *self)
{
	g_return_val_if_fail(CODECHAT_IS_HUB(self), 0);
	return g_hash_table_size(self->sessions);
}

guint
codechat_hub_get_n_rooms(CodechatHub *self)
{
	g_autoptr(GPtrArray) names = NULL;
	guint n;

	g_return_val_if_fail(CODECHAT_IS_HUB(self), 0);
	names = codechat_store_list_rooms(self->store);
	/* the live rooms, plus the stored ones without members: a lookup
	 * each, so that /metrics and /healthz stay linear in the rooms */
	n = g_hash_table_size(self->rooms);
	for (guint i = 0; i < names->len; i++) {
		if (!g_hash_table_contains(self->rooms, g_ptr_array_index(names, i)))
			n++;
	}
	return n;
}

/**
 * codechat_hub_foreach_room:
 * @func: called with the name and the number of members of each room
 *   that has members, in no particular order
 *
 * For /metrics: linear in the rooms, whatever the number of sessions.
 */
void
codechat_hub_foreach_room(CodechatHub *self, CodechatHubRoomFunc func, gpointer user_data)
{
	GHashTableIter iter;
	Room *room;

	g_return_if_fail(CODECHAT_IS_HUB(self));
	g_hash_table_iter_init(&iter, self->rooms);
	while (g_hash_table_iter_next(&iter, NULL, (gpointer *)&room))
		func(room->name, room->members->len, user_data);
}

/**
 * codechat_hub_get_metrics:
 *
 * Returns: (transfer none): the counters of this hub, for /metrics and
 * for the transport to count frames and bytes in
 */
CodechatMetrics *
codechat_hub_get_metrics(CodechatHub *self)
{
	g_return_val_if_fail(CODECHAT_IS_HUB(self), NULL);
	return self->metrics;
}

typedef struct {
	CodechatHub *hub; /* (owned) */
	CodechatHubPostFunc func;
	gpointer user_data;
} PostData;

static void
post_stored_cb(CodechatMessage *msg, const GError *error, gpointer user_data)
{
	PostData *data = user_data;

	if (error == NULL) {
		data->hub->metrics->messages_stored++;
		g_free(hub_deliver(data->hub, msg, NULL));
		data->func(msg, NULL, data->user_data);
	} else {
		g_autoptr(GError) reply =
		    hub_store_error(error, "the server could not store the message");
		data->func(msg, reply, data->user_data);
	}
	g_object_unref(data->hub);
	g_free(data);
}

/**
 * codechat_hub_post:
 * @msg: a message with room, from, kind, text and optionally lang and
 *   filename set; the hub sets its time and id
 * @func: called once the message is stored (or failed to be)
 *
 * Posts a message from outside the WebSocket sessions (D-Bus) through the
 * checks, the store and the fan-out of a say; it has a rate limit of its
 * own.  Returns %FALSE with a %CODECHAT_ERROR for a message that is
 * refused at once; @func is then not called.
 */
gboolean
codechat_hub_post(CodechatHub *self,
		  CodechatMessage *msg,
		  CodechatHubPostFunc func,
		  gpointer user_data,
		  GError **error)
{
	PostData *data;

	g_return_val_if_fail(CODECHAT_IS_HUB(self), FALSE);
	if (msg->room == NULL) {
		g_set_error_literal(error,
				    CODECHAT_ERROR,
				    CODECHAT_ERROR_BAD_REQUEST,
				    "a message needs a room");
		return FALSE;
	}
	if (!codechat_validate_room(msg->room, error) ||
	    !codechat_validate_nick(msg->from, error) ||
	    !codechat_validate_text(msg->text, self->config.max_text, error) ||
	    (msg->lang != NULL && !codechat_validate_lang(msg->lang, error)) ||
	    (msg->filename != NULL && !codechat_validate_filename(msg->filename, error)))
		return FALSE;
	if (!take_token(&self->post_tokens, &self->post_refill_us, &self->config)) {
		self->metrics->rate_limited++;
		g_set_error(error,
			    CODECHAT_ERROR,
			    CODECHAT_ERROR_RATE_LIMITED,
			    "slow down: %u messages per second",
			    self->config.rate);
		return FALSE;
	}
	msg->to = NULL;
	msg->ts = g_get_real_time();
	data = g_new0(PostData, 1);
	data->hub = g_object_ref(self);
	data->func = func;
	data->user_data = user_data;
	codechat_store_append(self->store, msg->room, msg, post_stored_cb, data);
	return TRUE;
}

void
codechat_room_info_free(CodechatRoomInfo *info)
{
	g_free(info->name);
	g_free(info);
}

/**
 * codechat_hub_list_rooms:
 *
 * Returns: (transfer container) (element-type CodechatRoomInfo): the rooms
 * with members or messages, by name
 */
GPtrArray *
codechat_hub_list_rooms(CodechatHub *self)
{
	g_autoptr(GPtrArray) names = hub_room_names(self);
	GPtrArray *rooms = g_ptr_array_new_with_free_func((GDestroyNotify)codechat_room_info_free);

	for (guint i = 0; i < names->len; i++) {
		const gchar *name = g_ptr_array_index(names, i);
		Room *room = g_hash_table_lookup(self->rooms, name);
		CodechatRoomInfo *info = g_new0(CodechatRoomInfo, 1);
		info->name = g_strdup(name);
		info->members = hub_count_members(self, name, room);
		info->last_id = codechat_store_get_last_id(self->store, name);
		g_ptr_array_add(rooms, info);
	}
	return rooms;
}

GStrv
codechat_hub_list_members(CodechatHub *self, const gchar *room_name, GError **error)
{
	g_autoptr(GStrvBuilder) builder = g_strv_builder_new();
	g_autoptr(GPtrArray) nicks = NULL;

	if (!codechat_validate_room(room_name, error))
		return NULL;
	nicks = hub_dup_members(self, room_name, g_hash_table_lookup(self->rooms, room_name));
	for (guint i = 0; i < nicks->len; i++)
		g_strv_builder_add(builder, g_ptr_array_index(nicks, i));
	return g_strv_builder_end(builder);
}

typedef struct {
	CodechatHub *hub; /* (owned) */
	CodechatHubHistoryFunc func;
	gpointer user_data;
} GetHistoryData;

static void
get_history_read_cb(GPtrArray *page, gboolean more, const GError *error, gpointer user_data)
{
	GetHistoryData *data = user_data;

	if (error != NULL) {
		g_autoptr(GError) reply =
		    hub_store_error(error, "the server cannot read the history");
		codechat_warning(CODECHAT_LOG_FIELDS(.room = NULL),
				 "cannot read the history: %s",
				 error->message);
		data->func(NULL, reply, data->user_data);
	} else {
		data->func(page, NULL, data->user_data);
	}
	g_object_unref(data->hub);
	g_free(data);
}

/**
 * codechat_hub_get_history_async:
 * @before: only ids below this one; 0 for the latest page
 * @limit: 1 to 500, 0 for the default page
 * @func: called once with the page (oldest first) or an error (a
 *   %CODECHAT_ERROR), perhaps before this function returns
 */
void
codechat_hub_get_history_async(CodechatHub *self,
			       const gchar *room,
			       guint64 before,
			       guint limit,
			       CodechatHubHistoryFunc func,
			       gpointer user_data)
{
	g_autoptr(GError) error = NULL;
	GetHistoryData *data;

	g_return_if_fail(CODECHAT_IS_HUB(self));
	g_return_if_fail(func != NULL);
	if (!codechat_validate_room(room, &error)) {
		func(NULL, error, user_data);
		return;
	}
	if (limit > CODECHAT_MAX_PAGE) {
		g_set_error(&error,
			    CODECHAT_ERROR,
			    CODECHAT_ERROR_BAD_REQUEST,
			    "limit must be at most %d",
			    CODECHAT_MAX_PAGE);
		func(NULL, error, user_data);
		return;
	}
	data = g_new0(GetHistoryData, 1);
	data->hub = g_object_ref(self);
	data->func = func;
	data->user_data = user_data;
	codechat_store_query_async(self->store,
				   room,
				   0,
				   before == 0 ? CODECHAT_STORE_NO_BOUND : before,
				   limit == 0 ? CODECHAT_DEFAULT_PAGE : limit,
				   TRUE,
				   get_history_read_cb,
				   data);
}

const gchar *
codechat_hub_get_epoch(CodechatHub *self)
{
	g_return_val_if_fail(CODECHAT_IS_HUB(self), NULL);
	return codechat_store_get_epoch(self->store);
}

/**
 * codechat_hub_shutdown:
 *
 * Closes every session with 1001; #CodechatHub::drained is emitted once
 * the last one is gone (at once when there is none).
 */
void
codechat_hub_shutdown(CodechatHub *self)
{
	g_autoptr(GList) sessions = NULL;

	g_return_if_fail(CODECHAT_IS_HUB(self));
	self->shutting_down = TRUE;
	g_clear_handle_id(&self->keepalive_id, g_source_remove);
	sessions = g_hash_table_get_keys(self->sessions);
	for (GList *l = sessions; l != NULL; l = l->next) {
		Session *s = l->data;
		if (session_is_open(s))
			session_close(s, SOUP_WEBSOCKET_CLOSE_GOING_AWAY, "server shutting down");
		else if (codechat_ws_conn_get_state(s->conn) == CODECHAT_WS_CLOSED)
			hub_remove_session(self, s);
	}
	if (g_hash_table_size(self->sessions) == 0)
		g_signal_emit(self, signals[SIGNAL_DRAINED], 0);
}

/*
 * The accounts changed: a session stays only while its hello would still
 * succeed, so a removed account (or one given a new token) ends its
 * sessions, and so do anonymous ones once tokens are needed.
 */
static void
accounts_changed_cb(CodechatAccounts *accounts, gpointer user_data)
{
	CodechatHub *self = user_data;
	g_autoptr(GList) sessions = g_hash_table_get_keys(self->sessions);
	gboolean needs_token = hub_needs_token(self);

	for (GList *l = sessions; l != NULL; l = l->next) {
		Session *s = l->data;
		const gchar *hash;

		if (s->nick == NULL || s->closing)
			continue;
		hash = codechat_accounts_lookup_hash(accounts, s->nick);
		if (s->account_hash != NULL ? g_strcmp0(hash, s->account_hash) == 0 : !needs_token)
			continue;
		codechat_info(CODECHAT_LOG_FIELDS(.peer = s->peer, .nick = s->nick),
			      "session %u (%s, %s): its account is gone",
			      s->serial,
			      s->peer,
			      s->nick);
		session_send_error_literal(s,
					   CODECHAT_ERROR_AUTH_FAILED,
					   s->account_hash != NULL
					       ? "your account was removed or its token changed"
					       : "this server needs a token now",
					   NULL);
		session_close(s, SOUP_WEBSOCKET_CLOSE_POLICY_VIOLATION, "account removed");
	}
}

/* a member of another daemon joined, parted or quit: this daemon's members
 * of the room see it like a local one (a session reading its replay gets
 * the members in "joined" at the end of it instead, see room_broadcast()) */
static void
cluster_presence_cb(CodechatCluster *cluster,
		    const gchar *room_name,
		    const gchar *nick,
		    const gchar *event,
		    gpointer user_data)
{
	CodechatHub *self = CODECHAT_HUB(user_data);
	Room *room = g_hash_table_lookup(self->rooms, room_name);

	codechat_debug(CODECHAT_LOG_FIELDS(.room = room_name, .nick = nick),
		       "%s %s %s on another daemon",
		       nick,
		       event,
		       room_name);
	if (room != NULL)
		room_send_presence_of(room, nick, event, NULL);
}

/*
 * This daemon was cut off from Redis long enough to count as dead, and a
 * session of another daemon took the nick meanwhile: the local session
 * ends.  It is closed with 1008 (policy), like a hello refused, and not
 * 1001 (going away): this server stays, and a client that reconnects at
 * once on 1001 would only get nick-taken.  The cluster has already
 * forgotten the nick and its rooms here, so no quit is sent for it: it
 * would name a nick that another daemon now holds.
 */
static void
cluster_nick_lost_cb(CodechatCluster *cluster, const gchar *nick, gpointer user_data)
{
	CodechatHub *self = CODECHAT_HUB(user_data);
	g_autofree gchar *fold = codechat_nick_fold(nick);
	Session *s = g_hash_table_lookup(self->nicks, fold);

	if (s == NULL || s->nick == NULL || s->closing)
		return;
	codechat_message(CODECHAT_LOG_FIELDS(.peer = s->peer, .nick = s->nick),
			 "session %u (%s, %s): its nick was taken on another daemon",
			 s->serial,
			 s->peer,
			 s->nick);
	s->claimed = FALSE;
	session_send_error_literal(s,
				   CODECHAT_ERROR_NICK_TAKEN,
				   "your nick was taken on another server while this one was "
				   "cut off",
				   NULL);
	session_close(s, SOUP_WEBSOCKET_CLOSE_POLICY_VIOLATION, "nick taken elsewhere");
}

/**
 * codechat_hub_set_cluster:
 * @cluster: (nullable): the daemons sharing this one's Redis, or %NULL
 *
 * With a cluster, a nick is unique across the daemons, and the members
 * of a room (joined, who, rooms, presence) are those of every daemon.
 * Set it before the first session.
 */
void
codechat_hub_set_cluster(CodechatHub *self, CodechatCluster *cluster)
{
	g_return_if_fail(CODECHAT_IS_HUB(self));
	g_return_if_fail(cluster == NULL || CODECHAT_IS_CLUSTER(cluster));

	if (self->cluster != NULL)
		g_signal_handlers_disconnect_by_data(self->cluster, self);
	g_set_object(&self->cluster, cluster);
	if (cluster == NULL)
		return;
	g_signal_connect_object(cluster, "presence", G_CALLBACK(cluster_presence_cb), self, 0);
	g_signal_connect_object(cluster, "nick-lost", G_CALLBACK(cluster_nick_lost_cb), self, 0);
}

/**
 * codechat_hub_set_accounts:
 * @accounts: (nullable): the accounts, or %NULL for none
 * @require_auth: refuse every hello without a valid token, even while
 *   there are no accounts (protected mode)
 *
 * Sessions made over D-Bus (codechat_hub_post()) are not concerned: the
 * bus is local and trusted.
 */
void
codechat_hub_set_accounts(CodechatHub *self, CodechatAccounts *accounts, gboolean require_auth)
{
	g_return_if_fail(CODECHAT_IS_HUB(self));
	g_return_if_fail(accounts == NULL || CODECHAT_IS_ACCOUNTS(accounts));

	if (self->accounts != NULL)
		g_signal_handlers_disconnect_by_data(self->accounts, self);
	g_set_object(&self->accounts, accounts);
	self->require_auth = require_auth;
	if (accounts != NULL)
		g_signal_connect_object(accounts,
					"changed",
					G_CALLBACK(accounts_changed_cb),
					self,
					0);
}

static void
codechat_hub_dispose(GObject *object)
{
	CodechatHub *self = CODECHAT_HUB(object);
	g_autoptr(GList) sessions = g_hash_table_get_keys(self->sessions);

	g_clear_handle_id(&self->keepalive_id, g_source_remove);
	g_clear_handle_id(&self->hello_timer_id, g_source_remove);
	for (GList *l = sessions; l != NULL; l = l->next) {
		Session *s = l->data;
		/* sessions still open at exit: drop them without telling anyone */
		self->shutting_down = FALSE;
		hub_remove_session(self, s);
	}
	G_OBJECT_CLASS(codechat_hub_parent_class)->dispose(object);
}

static void
codechat_hub_finalize(GObject *object)
{
	CodechatHub *self = CODECHAT_HUB(object);

	g_hash_table_unref(self->sessions);
	g_hash_table_unref(self->nicks);
	g_hash_table_unref(self->per_address);
	g_hash_table_unref(self->rooms);
	g_clear_object(&self->parser);
	g_clear_object(&self->store);
	g_clear_object(&self->accounts);
	g_clear_object(&self->cluster);
	g_clear_pointer(&self->metrics, codechat_metrics_unref);
	G_OBJECT_CLASS(codechat_hub_parent_class)->finalize(object);
}

static void
codechat_hub_class_init(CodechatHubClass *klass)
{
	GObjectClass *object_class = G_OBJECT_CLASS(klass);

	object_class->dispose = codechat_hub_dispose;
	object_class->finalize = codechat_hub_finalize;

	/**
	 * CodechatHub::drained:
	 *
	 * Emitted after codechat_hub_shutdown() once no session is left.
	 */
	/**
	 * CodechatHub::message-posted:
	 * @msg: (type gpointer): the CodechatMessage, stored, with its id
	 *
	 * Emitted once for every message kept, from any source.
	 */
	signals[SIGNAL_MESSAGE_POSTED] = g_signal_new("message-posted",
						      G_TYPE_FROM_CLASS(klass),
						      G_SIGNAL_RUN_LAST,
						      0,
						      NULL,
						      NULL,
						      NULL,
						      G_TYPE_NONE,
						      1,
						      G_TYPE_POINTER);
	signals[SIGNAL_MEMBER_JOINED] = g_signal_new("member-joined",
						     G_TYPE_FROM_CLASS(klass),
						     G_SIGNAL_RUN_LAST,
						     0,
						     NULL,
						     NULL,
						     NULL,
						     G_TYPE_NONE,
						     2,
						     G_TYPE_STRING,
						     G_TYPE_STRING);
	signals[SIGNAL_MEMBER_LEFT] = g_signal_new("member-left",
						   G_TYPE_FROM_CLASS(klass),
						   G_SIGNAL_RUN_LAST,
						   0,
						   NULL,
						   NULL,
						   NULL,
						   G_TYPE_NONE,
						   2,
						   G_TYPE_STRING,
						   G_TYPE_STRING);
	/* the number of open WebSocket connections changed */
	signals[SIGNAL_CONNECTIONS_CHANGED] = g_signal_new("connections-changed",
							   G_TYPE_FROM_CLASS(klass),
							   G_SIGNAL_RUN_LAST,
							   0,
							   NULL,
							   NULL,
							   NULL,
							   G_TYPE_NONE,
							   0);
	signals[SIGNAL_DRAINED] = g_signal_new("drained",
					       G_TYPE_FROM_CLASS(klass),
					       G_SIGNAL_RUN_LAST,
					       0,
					       NULL,
					       NULL,
					       NULL,
					       G_TYPE_NONE,
					       0);
}

static void
codechat_hub_init(CodechatHub *self)
{
	self->sessions = g_hash_table_new_full(g_direct_hash,
					       g_direct_equal,
					       (GDestroyNotify)session_unref,
					       NULL);
	self->nicks = g_hash_table_new(g_str_hash, g_str_equal);
	self->per_address = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);
	self->rooms =
	    g_hash_table_new_full(g_str_hash, g_str_equal, NULL, (GDestroyNotify)room_free);
	self->parser = json_parser_new_immutable();
	self->metrics = codechat_metrics_new();
}

/*
 * A message that another daemon on the same store appended: out to this
 * daemon's sessions like one of its own, with no acknowledgement to
 * anyone.  It is not counted in messages_stored (the other daemon counts
 * it); the frames it makes are counted by the transport like any other.
 */
static void
store_remote_message_cb(CodechatStore *store,
			const gchar *conv,
			CodechatMessage *msg,
			gpointer user_data)
{
	CodechatHub *self = CODECHAT_HUB(user_data);

	codechat_debug(CODECHAT_LOG_FIELDS(.room = msg->room, .nick = msg->from),
		       "message %" G_GUINT64_FORMAT " of %s from another daemon",
		       msg->id,
		       conv);
	g_free(hub_deliver(self, msg, NULL));
}

CodechatHub *
codechat_hub_new(CodechatStore *store, const CodechatHubConfig *config)
{
	CodechatHub *self;

	g_return_val_if_fail(CODECHAT_IS_STORE(store), NULL);
	self = g_object_new(CODECHAT_TYPE_HUB, NULL);
	self->store = g_object_ref(store);
	g_signal_connect_object(store,
				"remote-message",
				G_CALLBACK(store_remote_message_cb),
				self,
				0);
	self->config = *config;
	self->post_tokens = config->burst;
	self->post_refill_us = g_get_monotonic_time();
	if (self->config.keepalive > 0)
		self->keepalive_id =
		    g_timeout_add_seconds(self->config.keepalive, hub_keepalive_cb, self);
	return self;
}

/**
 * codechat_hub_set_config:
 * @config: the new limits, from a reload of the config file
 *
 * Applies @config without dropping anyone: the limits on connections
 * count from the next one, the rate limit from the next message (a
 * bucket fuller than the new burst is cut down to it), the hello timeout
 * from the next connection and max_outbound from the next frame queued.
 */
void
codechat_hub_set_config(CodechatHub *self, const CodechatHubConfig *config)
{
	GHashTableIter iter;
	Session *s;
	guint old_keepalive;

	g_return_if_fail(CODECHAT_IS_HUB(self));
	g_return_if_fail(config != NULL);

	old_keepalive = self->config.keepalive;
	self->config = *config;
	if (self->config.keepalive == old_keepalive || self->shutting_down)
		return;
	g_clear_handle_id(&self->keepalive_id, g_source_remove);
	if (self->config.keepalive == 0)
		return;
	/* a session idle under the old interval (or none) gets two of the
	 * new ones to answer a ping before it counts as dead */
	g_hash_table_iter_init(&iter, self->sessions);
	while (g_hash_table_iter_next(&iter, (gpointer *)&s, NULL))
		s->last_seen_us = g_get_monotonic_time();
	self->keepalive_id = g_timeout_add_seconds(self->config.keepalive, hub_keepalive_cb, self);
}
