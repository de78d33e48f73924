import { describe, expect, it } from 'vitest';
import { BOT_SCOPES, slackManifest } from '../../adapters/slack/manifest.js';

describe('slackManifest', () => {
  it('describes a Socket Mode app with the slash command, events and scopes the adapter uses', () => {
    const manifest = slackManifest({ socketMode: true }) as {
      features: { slash_commands: { command: string; url?: string }[] };
      oauth_config: { scopes: { bot: string[] } };
      settings: {
        socket_mode_enabled: boolean;
        event_subscriptions: { bot_events: string[]; request_url?: string };
        interactivity: { is_enabled: boolean; request_url?: string };
      };
    };
    expect(manifest.settings.socket_mode_enabled).toBe(true);
    // Approval cards' buttons: clicks come over the socket.
    expect(manifest.settings.interactivity).toEqual({ is_enabled: true });
    expect(manifest.settings.event_subscriptions.request_url).toBeUndefined();
    expect(manifest.settings.event_subscriptions.bot_events).toEqual(
      expect.arrayContaining(['app_mention', 'message.im', 'message.channels']),
    );
    expect(manifest.features.slash_commands[0]?.command).toBe('/sandbot');
    expect(manifest.oauth_config.scopes.bot).toEqual([...BOT_SCOPES]);
  });

  it('points an HTTP app at the gateway’s /slack/events, and needs the public URL for it', () => {
    const manifest = slackManifest({ socketMode: false, publicUrl: 'https://bot.example.com/' });
    expect(JSON.stringify(manifest)).toContain('"request_url":"https://bot.example.com/slack/events"');
    expect(JSON.stringify(manifest)).toContain('"url":"https://bot.example.com/slack/events"');
    expect((manifest.settings as { interactivity: unknown }).interactivity).toEqual({
      is_enabled: true,
      request_url: 'https://bot.example.com/slack/events',
    });
    expect(() => slackManifest({ socketMode: false })).toThrow(/public URL/);
  });
});
