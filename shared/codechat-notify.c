/* SPDX-License-Identifier: GPL-3.0-or-later */
#define G_LOG_DOMAIN "codechat-shared"

#include "config.h"

#include <glib/gi18n-lib.h>
#include <libnotify/notify.h>

#include "codechat-notify.h"

/* after a failure, how long to leave the notification server alone:
 * libnotify's calls are synchronous, and each would fail again */
#define RETRY_AFTER_US (30 * G_USEC_PER_SEC)

/* desktop notifications over libnotify.
 *
 * One room (or one sender of direct messages) gets at most one new
 * notification per window; what arrives within the window is counted
 * and shown once, when the window ends, by updating that notification
 * in place ("5 new messages in #general").  A room in a steady stream
 * therefore costs one D-Bus call per window, never one per message.
 *
 * No session bus, no notification server, a server that fails: one
 * g_debug and one ::unavailable per notifier, and the notifier goes quiet
 * for RETRY_AFTER_US. */

typedef struct {
	CodechatNotifier *notifier;	  /* (unowned) owns this */
	gchar *label;			  /* (owned) "#general", or the sender's nick */
	gboolean direct;		  /* direct messages from one nick */
	NotifyNotification *notification; /* (owned) (nullable) */
	gchar *summary;			  /* (owned) (nullable) summary of the newest message */
	guint count;			  /* messages since the notification appeared */
	gint64 shown_at;		  /* monotonic time of the last Notify */
	guint flush_id;			  /* GSource id, 0 if none */
} Burst;

struct _CodechatNotifier {
	GObject parent_instance;
	CodechatNotifyMode mode;
	gchar *nick;	    /* (owned) (nullable) */
	guint window_ms;    /* coalescing window */
	GHashTable *bursts; /* (owned) (element-type utf8 Burst) by room, or "@" and the sender */
	gboolean initted;   /* this notifier called notify_init() */
	gboolean ready;	    /* a server answered, capabilities known */
	gboolean markup;    /* the server takes markup in the body */
	gboolean reported;  /* a failure was logged */
	gint64 retry_at;    /* monotonic time before which nothing is sent */
};

G_DEFINE_FINAL_TYPE(CodechatNotifier, codechat_notifier, G_TYPE_OBJECT)

enum {
	PROP_0,
	PROP_MODE,
	PROP_NICK,
	PROP_WINDOW_MS,
	N_PROPS,
};

static GParamSpec *properties[N_PROPS];

enum {
	SIGNAL_UNAVAILABLE,
	N_SIGNALS,
};

static guint signals[N_SIGNALS];

const gchar *
codechat_notify_mode_to_string(CodechatNotifyMode mode)
{
	switch (mode) {
	case CODECHAT_NOTIFY_OFF:
		return "off";
	case CODECHAT_NOTIFY_MENTIONS:
		return "mentions";
	case CODECHAT_NOTIFY_ALL:
		return "all";
	default:
		return NULL;
	}
}

gboolean
codechat_notify_mode_from_string(const gchar *str, CodechatNotifyMode *mode)
{
	static const CodechatNotifyMode modes[] = {
	    CODECHAT_NOTIFY_OFF,
	    CODECHAT_NOTIFY_MENTIONS,
	    CODECHAT_NOTIFY_ALL,
	};

	g_return_val_if_fail(mode != NULL, FALSE);

	for (guint i = 0; str != NULL && i < G_N_ELEMENTS(modes); i++) {
		if (g_ascii_strcasecmp(str, codechat_notify_mode_to_string(modes[i])) == 0) {
			*mode = modes[i];
			return TRUE;
		}
	}
	return FALSE;
}

/* a character that may continue a word: letters and digits of any script,
 * and the '_' and '-' of nicks */
static gboolean
is_word_char(gunichar c)
{
	return g_unichar_isalnum(c) || c == '_' || c == '-' || g_unichar_ismark(c);
}

/* @nick as a whole word of @text, ignoring ASCII case (nicks are ASCII);
 * "alice:", "@alice", "alice's" and "alice-" at the end of a sentence
 * count, "malice", "alice_bot" and "alice-bot" do not */
gboolean
codechat_notify_is_mention(const gchar *text, const gchar *nick)
{
	gsize len;

	if (text == NULL || nick == NULL || nick[0] == '\0')
		return FALSE;
	len = strlen(nick);
	for (const gchar *p = text; *p != '\0'; p = g_utf8_next_char(p)) {
		const gchar *end = p + len;
		gunichar after;

		if (g_ascii_strncasecmp(p, nick, len) != 0)
			continue;
		if (p > text && is_word_char(g_utf8_get_char(g_utf8_find_prev_char(text, p))))
			continue;
		after = g_utf8_get_char(end);
		if (after == '-') {
			/* a trailing dash ends the word unless another follows */
			after = g_utf8_get_char(end + 1);
			if (after != '\0' && is_word_char(after) && after != '-')
				continue;
			return TRUE;
		}
		if (after == '\0' || !is_word_char(after))
			return TRUE;
	}
	return FALSE;
}

/* @text cut to @max_chars characters, on a character boundary, with "…"
 * when anything was cut; invalid UTF-8 is repaired first */
gchar *
codechat_notify_shorten(const gchar *text, guint max_chars)
{
	g_autofree gchar *valid = g_utf8_make_valid(text != NULL ? text : "", -1);
	gchar *cut;

	if ((guint)g_utf8_strlen(valid, -1) <= max_chars)
		return g_steal_pointer(&valid);
	/* the ellipsis is one of the @max_chars */
	cut = g_utf8_offset_to_pointer(valid, max_chars > 0 ? max_chars - 1 : 0);
	*cut = '\0';
	return g_strconcat(valid, "…", NULL);
}

static void
burst_free(Burst *burst)
{
	g_clear_handle_id(&burst->flush_id, g_source_remove);
	g_clear_object(&burst->notification);
	g_free(burst->summary);
	g_free(burst->label);
	g_free(burst);
}

static void
report_failure(CodechatNotifier *self, const gchar *what, const GError *error)
{
	self->retry_at = g_get_monotonic_time() + RETRY_AFTER_US;
	self->ready = FALSE;
	if (self->reported)
		return;
	self->reported = TRUE;
	g_debug("desktop notifications unavailable: %s%s%s",
		what,
		error != NULL ? ": " : "",
		error != NULL ? error->message : "");
	{
		g_autofree gchar *reason = g_strdup_printf("%s%s%s",
							   what,
							   error != NULL ? ": " : "",
							   error != NULL ? error->message : "");
		g_signal_emit(self, signals[SIGNAL_UNAVAILABLE], 0, reason);
	}
}

/* libnotify initialised and a server found; lazily, on the first
 * notification, and again after RETRY_AFTER_US when it failed */
static gboolean
ensure_ready(CodechatNotifier *self)
{
	GList *caps;

	if (self->ready)
		return TRUE;
	if (self->retry_at != 0 && g_get_monotonic_time() < self->retry_at)
		return FALSE;
	if (!notify_is_initted()) {
		if (!notify_init(CODECHAT_NOTIFY_APP_ID)) {
			report_failure(self, _("libnotify cannot be set up"), NULL);
			return FALSE;
		}
		self->initted = TRUE;
	}
	/* connects and asks the server; unlike notify_get_server_caps(), a
	 * missing server is no warning here */
	if (!notify_get_server_info(NULL, NULL, NULL, NULL)) {
		report_failure(self, _("no notification server on the session bus"), NULL);
		return FALSE;
	}
	caps = notify_get_server_caps();
	self->markup = g_list_find_custom(caps, "body-markup", (GCompareFunc)g_strcmp0) != NULL;
	g_list_free_full(caps, g_free);
	self->ready = TRUE;
	return TRUE;
}

static gboolean
burst_show(Burst *burst)
{
	CodechatNotifier *self = burst->notifier;
	g_autoptr(GError) error = NULL;

	if (!notify_notification_show(burst->notification, &error)) {
		report_failure(self, _("the notification server failed"), error);
		return FALSE;
	}
	burst->shown_at = g_get_monotonic_time();
	return TRUE;
}

static gchar *
body_text(CodechatNotifier *self, const gchar *text)
{
	g_autofree gchar *plain = codechat_notify_shorten(text, CODECHAT_NOTIFY_MAX_BODY);

	return self->markup ? g_markup_escape_text(plain, -1) : g_steal_pointer(&plain);
}

static gboolean
burst_flush_cb(gpointer user_data)
{
	Burst *burst = user_data;
	CodechatNotifier *self = burst->notifier;
	g_autofree gchar *count = NULL;
	g_autofree gchar *body = NULL;

	burst->flush_id = 0;
	if (burst->notification == NULL || !ensure_ready(self))
		return G_SOURCE_REMOVE;
	if (burst->direct)
		count = g_strdup_printf(g_dngettext(GETTEXT_PACKAGE,
						    "%u new message from %s",
						    "%u new messages from %s",
						    burst->count),
					burst->count,
					burst->label);
	else
		count = g_strdup_printf(g_dngettext(GETTEXT_PACKAGE,
						    "%u new message in %s",
						    "%u new messages in %s",
						    burst->count),
					burst->count,
					burst->label);
	body = body_text(self, count);
	notify_notification_update(burst->notification, burst->summary, body, NULL);
	burst_show(burst);
	return G_SOURCE_REMOVE;
}

static NotifyNotification *
notification_new(CodechatNotifier *self, const gchar *summary, const gchar *text)
{
	g_autofree gchar *body = body_text(self, text);
	NotifyNotification *n = notify_notification_new(summary, body, NULL);

	notify_notification_set_app_name(n, CODECHAT_NOTIFY_APP_ID);
	notify_notification_set_category(n, "im.received");
	notify_notification_set_hint_string(n, "desktop-entry", CODECHAT_NOTIFY_APP_ID);
	return n;
}

gboolean
codechat_notifier_wants(CodechatNotifier *self, const CodechatMessage *msg)
{
	g_return_val_if_fail(CODECHAT_IS_NOTIFIER(self), FALSE);
	g_return_val_if_fail(msg != NULL, FALSE);

	if (self->mode == CODECHAT_NOTIFY_OFF)
		return FALSE;
	if (self->nick != NULL && codechat_nick_equal(msg->from, self->nick))
		return FALSE;
	if (msg->room == NULL) {
		/* direct messages between others are none of our business,
		 * even in "all": the daemon sees every one of them */
		return self->nick != NULL && codechat_nick_equal(msg->to, self->nick);
	}
	if (self->mode == CODECHAT_NOTIFY_ALL)
		return TRUE;
	return codechat_notify_is_mention(msg->text, self->nick);
}

void
codechat_notifier_handle(CodechatNotifier *self, const CodechatMessage *msg)
{
	g_autofree gchar *folded = NULL;
	g_autofree gchar *key = NULL;
	g_autofree gchar *summary = NULL;
	Burst *burst;
	gint64 now;

	g_return_if_fail(CODECHAT_IS_NOTIFIER(self));
	g_return_if_fail(msg != NULL);

	if (!codechat_notifier_wants(self, msg))
		return;

	if (msg->room != NULL) {
		key = g_strdup(msg->room);
		summary = g_strdup_printf("#%s: %s", msg->room, msg->from);
	} else {
		folded = codechat_nick_fold(msg->from);
		key = g_strconcat("@", folded, NULL);
		summary = g_strdup_printf(_("%s (direct)"), msg->from);
	}

	now = g_get_monotonic_time();
	burst = g_hash_table_lookup(self->bursts, key);
	if (burst != NULL && burst->notification != NULL &&
	    (burst->flush_id != 0 || now - burst->shown_at < (gint64)self->window_ms * 1000)) {
		/* within the window: count it, show it when the window ends */
		burst->count++;
		g_free(burst->summary);
		burst->summary = g_steal_pointer(&summary);
		if (burst->flush_id == 0) {
			gint64 left_ms =
			    ((gint64)self->window_ms * 1000 - (now - burst->shown_at)) / 1000;
			burst->flush_id = g_timeout_add((guint)CLAMP(left_ms, 1, G_MAXUINT),
							burst_flush_cb,
							burst);
		}
		return;
	}

	if (!ensure_ready(self))
		return;
	if (burst == NULL) {
		burst = g_new0(Burst, 1);
		burst->notifier = self;
		burst->direct = msg->room == NULL;
		burst->label = msg->room != NULL ? g_strdup_printf("#%s", msg->room)
						 : g_strdup(msg->from);
		g_hash_table_insert(self->bursts, g_steal_pointer(&key), burst);
	}
	g_clear_object(&burst->notification);
	g_free(burst->summary);
	burst->summary = g_steal_pointer(&summary);
	burst->notification = notification_new(self, burst->summary, msg->text);
	burst->count = 1;
	if (!burst_show(burst)) {
		/* the next message starts afresh */
		g_clear_object(&burst->notification);
	}
}

CodechatNotifyMode
codechat_notifier_get_mode(CodechatNotifier *self)
{
	g_return_val_if_fail(CODECHAT_IS_NOTIFIER(self), CODECHAT_NOTIFY_OFF);
	return self->mode;
}

const gchar *
codechat_notifier_get_nick(CodechatNotifier *self)
{
	g_return_val_if_fail(CODECHAT_IS_NOTIFIER(self), NULL);
	return self->nick;
}

guint
codechat_notifier_get_window_ms(CodechatNotifier *self)
{
	g_return_val_if_fail(CODECHAT_IS_NOTIFIER(self), 0);
	return self->window_ms;
}

void
codechat_notifier_set_window_ms(CodechatNotifier *self, guint window_ms)
{
	g_return_if_fail(CODECHAT_IS_NOTIFIER(self));

	if (self->window_ms == window_ms)
		return;
	self->window_ms = window_ms;
	g_object_notify_by_pspec(G_OBJECT(self), properties[PROP_WINDOW_MS]);
}

static void
codechat_notifier_get_property(GObject *object, guint prop_id, GValue *value, GParamSpec *pspec)
{
	CodechatNotifier *self = CODECHAT_NOTIFIER(object);

	switch (prop_id) {
	case PROP_MODE:
		g_value_set_uint(value, self->mode);
		break;
	case PROP_NICK:
		g_value_set_string(value, self->nick);
		break;
	case PROP_WINDOW_MS:
		g_value_set_uint(value, self->window_ms);
		break;
	default:
		G_OBJECT_WARN_INVALID_PROPERTY_ID(object, prop_id, pspec);
	}
}

static void
codechat_notifier_set_property(GObject *object,
			       guint prop_id,
			       const GValue *value,
			       GParamSpec *pspec)
{
	CodechatNotifier *self = CODECHAT_NOTIFIER(object);

	switch (prop_id) {
	case PROP_MODE:
		self->mode = g_value_get_uint(value);
		break;
	case PROP_NICK:
		self->nick = g_value_dup_string(value);
		break;
	case PROP_WINDOW_MS:
		codechat_notifier_set_window_ms(self, g_value_get_uint(value));
		break;
	default:
		G_OBJECT_WARN_INVALID_PROPERTY_ID(object, prop_id, pspec);
	}
}

static void
codechat_notifier_finalize(GObject *object)
{
	CodechatNotifier *self = CODECHAT_NOTIFIER(object);

	/* the notifications first: their finalize goes through libnotify's
	 * proxy, which notify_uninit() drops */
	g_clear_pointer(&self->bursts, g_hash_table_unref);
	if (self->initted && notify_is_initted())
		notify_uninit();
	g_free(self->nick);

	G_OBJECT_CLASS(codechat_notifier_parent_class)->finalize(object);
}

static void
codechat_notifier_class_init(CodechatNotifierClass *klass)
{
	GObjectClass *object_class = G_OBJECT_CLASS(klass);

	object_class->get_property = codechat_notifier_get_property;
	object_class->set_property = codechat_notifier_set_property;
	object_class->finalize = codechat_notifier_finalize;

	/* a CodechatNotifyMode; there is no enum GType in shared/ */
	properties[PROP_MODE] =
	    g_param_spec_uint("mode",
			      NULL,
			      NULL,
			      CODECHAT_NOTIFY_OFF,
			      CODECHAT_NOTIFY_ALL,
			      CODECHAT_NOTIFY_OFF,
			      G_PARAM_READWRITE | G_PARAM_CONSTRUCT_ONLY | G_PARAM_STATIC_STRINGS);
	properties[PROP_NICK] = g_param_spec_string("nick",
						    NULL,
						    NULL,
						    NULL,
						    G_PARAM_READWRITE | G_PARAM_CONSTRUCT_ONLY |
							G_PARAM_STATIC_STRINGS);
	properties[PROP_WINDOW_MS] =
	    g_param_spec_uint("window-ms",
			      NULL,
			      NULL,
			      0,
			      G_MAXUINT,
			      CODECHAT_NOTIFY_DEFAULT_WINDOW_MS,
			      G_PARAM_READWRITE | G_PARAM_CONSTRUCT | G_PARAM_EXPLICIT_NOTIFY |
				  G_PARAM_STATIC_STRINGS);
	g_object_class_install_properties(object_class, N_PROPS, properties);

	/**
	 * CodechatNotifier::unavailable:
	 * @reason: why, translated, for people
	 *
	 * Emitted once per notifier, at the first failure to show a
	 * notification: no session bus, no notification server, or a server
	 * that failed.  The notifier retries later by itself; a program
	 * whose user asked for notifications says it here.
	 */
	signals[SIGNAL_UNAVAILABLE] = g_signal_new("unavailable",
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
codechat_notifier_init(CodechatNotifier *self)
{
	self->window_ms = CODECHAT_NOTIFY_DEFAULT_WINDOW_MS;
	self->bursts =
	    g_hash_table_new_full(g_str_hash, g_str_equal, g_free, (GDestroyNotify)burst_free);
}

/**
 * codechat_notifier_new:
 * @mode: which messages to show
 * @nick: (nullable): our own nick: its messages never notify, and
 *   "mentions" looks for it
 *
 * Returns: (transfer full): a notifier; libnotify is set up on the
 *   first notification
 */
CodechatNotifier *
codechat_notifier_new(CodechatNotifyMode mode, const gchar *nick)
{
	g_return_val_if_fail(mode <= CODECHAT_NOTIFY_ALL, NULL);

	return g_object_new(CODECHAT_TYPE_NOTIFIER, "mode", (guint)mode, "nick", nick, NULL);
}
