import type { ServerResponse } from 'node:http';
import { discordError, type RecordedRequest, sendJson, sendNoContent } from './fake-discord-rest.js';
import { channelObject, type FakeInteraction, messageObject, snowflake } from './fake-discord-state.js';
import type { FakeWorld } from './fake-discord-world.js';

/**
 * The REST routes of API v10 that sandbot and discord.js call, answered like Discord: status codes,
 * error codes (10003 Unknown Channel, 10008 Unknown Message, 10062 Unknown interaction, 40060 already
 * acknowledged, 160004 thread already created) and bodies.
 */

interface Call {
  world: FakeWorld;
  request: RecordedRequest;
  body: Record<string, unknown>;
  params: string[];
  res: ServerResponse;
  port: number;
}

type Route = [method: string, path: RegExp, handler: (call: Call) => void, auth: 'bot' | 'interaction'];

const routes: Route[] = [
  ['POST', /^\/interactions\/(\d+)\/([^/]+)\/callback$/, interactionCallback, 'interaction'],
  ['GET', /^\/webhooks\/(\d+)\/([^/]+)\/messages\/@original$/, originalResponse, 'interaction'],
  ['PATCH', /^\/webhooks\/(\d+)\/([^/]+)\/messages\/@original$/, originalResponse, 'interaction'],
  ['GET', /^\/gateway\/bot$/, gatewayBot, 'bot'],
  ['PUT', /^\/applications\/(\d+)(?:\/guilds\/(\d+))?\/commands$/, putCommands, 'bot'],
  ['GET', /^\/channels\/(\d+)$/, getChannel, 'bot'],
  ['POST', /^\/channels\/(\d+)\/typing$/, ({ res }) => sendNoContent(res), 'bot'],
  ['POST', /^\/channels\/(\d+)\/messages$/, postMessage, 'bot'],
  ['PATCH', /^\/channels\/(\d+)\/messages\/(\d+)$/, changeMessage, 'bot'],
  ['DELETE', /^\/channels\/(\d+)\/messages\/(\d+)$/, changeMessage, 'bot'],
  ['POST', /^\/channels\/(\d+)\/messages\/(\d+)\/threads$/, startThread, 'bot'],
];

export function answerApi(
  world: FakeWorld,
  request: RecordedRequest,
  res: ServerResponse,
  port: number,
): void {
  for (const [method, path, handler, auth] of routes) {
    const match = method === request.method ? path.exec(request.path) : null;
    if (!match) continue;
    // Interaction callbacks and webhook edits carry the interaction token, not the bot token.
    if (auth === 'bot' && request.authorization !== `Bot ${world.token}`) {
      discordError(res, 401, 0, '401: Unauthorized');
      return;
    }
    const body = (request.body ?? {}) as Record<string, unknown>;
    handler({ world, request, body, params: match.slice(1).map((p) => p ?? ''), res, port });
    return;
  }
  discordError(res, 404, 0, `fake discord has no route ${request.method} ${request.path}`);
}

function interactionCallback({ world, body, params: [id, token], res }: Call) {
  const interaction = world.interactions.get(id ?? '');
  if (!interaction || interaction.token !== token)
    return discordError(res, 404, 10062, 'Unknown interaction');
  if (interaction.callback)
    return discordError(res, 400, 40060, 'Interaction has already been acknowledged.');
  interaction.callback = body as FakeInteraction['callback'];
  const data = (body.data ?? {}) as { content?: string; flags?: number };
  const clicked = world.messages.find((x) => x.id === interaction.messageId && !x.deleted);
  if (body.type === 7) {
    // UPDATE_MESSAGE: a component's interaction edits the message the component is on.
    if (!clicked) return discordError(res, 400, 50035, 'Invalid Form Body');
    world.editMessage(clicked, data, []);
    return sendNoContent(res);
  }
  interaction.original = world.createMessage(interaction.channelId, world.bot, data.content ?? '', {
    interactionToken: interaction.token,
    flags: data.flags ?? 0,
    history: data.content === undefined ? [] : [data.content],
  });
  sendNoContent(res);
}

function originalResponse({ world, request, body, params: [appId, token], res }: Call) {
  const interaction = world.interactionByToken(token);
  if (!interaction?.original || appId !== world.applicationId)
    return discordError(res, 404, 10008, 'Unknown Message');
  if (request.method === 'PATCH') world.editMessage(interaction.original, body, request.files);
  sendJson(res, 200, messageObject(interaction.original, world.baseUrl));
}

function gatewayBot({ res, port }: Call) {
  sendJson(res, 200, {
    url: `ws://127.0.0.1:${port}`,
    shards: 1,
    session_start_limit: { total: 1000, remaining: 999, reset_after: 0, max_concurrency: 1 },
  });
}

function putCommands({ world, request, params: [appId, guildId], res }: Call) {
  world.commands.set(guildId || 'global', request.body);
  const commands = (request.body as object[]).map((c) => ({ ...c, id: snowflake(), application_id: appId }));
  sendJson(res, 200, commands);
}

function getChannel({ world, params: [id], res }: Call) {
  const channel = world.channels.get(id ?? '');
  if (!channel) return discordError(res, 404, 10003, 'Unknown Channel');
  sendJson(res, 200, channelObject(channel));
}

function postMessage({ world, request, body, params: [channelId], res }: Call) {
  if (!world.channels.has(channelId ?? '')) return discordError(res, 404, 10003, 'Unknown Channel');
  const message = world.botPost(channelId ?? '', body, request.files);
  sendJson(res, 200, messageObject(message, world.baseUrl));
}

function changeMessage({ world, request, body, params: [channelId, messageId], res }: Call) {
  const message = world.messages.find((x) => x.id === messageId && x.channel_id === channelId && !x.deleted);
  if (!message) return discordError(res, 404, 10008, 'Unknown Message');
  if (request.method === 'DELETE') {
    message.deleted = true;
    return sendNoContent(res);
  }
  world.editMessage(message, body, request.files);
  sendJson(res, 200, messageObject(message, world.baseUrl));
}

function startThread({ world, body, params: [channelId, messageId], res }: Call) {
  const parent = world.channels.get(channelId ?? '');
  if (!parent || !world.messages.some((x) => x.id === messageId)) {
    return discordError(res, 404, 10008, 'Unknown Message');
  }
  if (world.channels.has(messageId ?? '')) {
    return discordError(res, 400, 160004, 'A thread has already been created for this message');
  }
  const thread = world.createThread(parent, messageId ?? '', String(body.name ?? 'thread'), world.bot.id);
  sendJson(res, 201, channelObject(thread));
}
