// SPDX-License-Identifier: UNLICENSED
pragma solidity ^0.8.24;

/// @notice The part of EnterpriseRegistry that AnchorRegistry relies on.
interface IEnterpriseRegistry {
    function isActiveAnchorer(address account) external view returns (bool);
}

/// @title AnchorRegistry
/// @notice Records Merkle roots of batches of industrial records. Only accounts the
/// EnterpriseRegistry reports as active anchorers may anchor; each root once only.
contract AnchorRegistry {
    struct Anchor {
        address submitter;
        uint64 size;
        uint64 blockNumber;
        uint64 timestamp;
        bytes32 metadataDigest;
    }

    IEnterpriseRegistry private immutable _registry;

    mapping(bytes32 => Anchor) private _anchors;
    uint256 private _anchorCount;

    event Anchored(
        bytes32 indexed root, address indexed submitter, uint64 size, bytes32 metadataDigest, uint256 blockNumber
    );

    error ZeroAddress();
    error NotActiveAnchorer(address account);
    error ZeroRoot();
    error EmptyBatch();
    error RootAlreadyAnchored(bytes32 root);

    constructor(address registry) {
        if (registry == address(0)) revert ZeroAddress();
        _registry = IEnterpriseRegistry(registry);
    }

    /// @notice The EnterpriseRegistry consulted for anchoring permissions.
    function enterpriseRegistry() external view returns (address) {
        return address(_registry);
    }

    /// @notice Anchor the Merkle `root` of a batch of `size` records; `metadataDigest`
    /// commits to off-chain batch metadata.
    function anchor(bytes32 root, uint64 size, bytes32 metadataDigest) external {
        if (!_registry.isActiveAnchorer(msg.sender)) revert NotActiveAnchorer(msg.sender);
        if (root == bytes32(0)) revert ZeroRoot();
        if (size == 0) revert EmptyBatch();
        Anchor storage a = _anchors[root];
        if (a.blockNumber != 0) revert RootAlreadyAnchored(root);

        a.submitter = msg.sender;
        a.size = size;
        a.blockNumber = uint64(block.number);
        a.timestamp = uint64(block.timestamp);
        a.metadataDigest = metadataDigest;
        _anchorCount += 1;
        emit Anchored(root, msg.sender, size, metadataDigest, block.number);
    }

    /// @notice Anchor record of `root`; all zeros when the root was never anchored.
    function getAnchor(bytes32 root)
        external
        view
        returns (uint256 blockNumber, address submitter, uint64 size, bytes32 metadataDigest, uint64 timestamp)
    {
        Anchor storage a = _anchors[root];
        return (a.blockNumber, a.submitter, a.size, a.metadataDigest, a.timestamp);
    }

    function isAnchored(bytes32 root) external view returns (bool) {
        return _anchors[root].blockNumber != 0;
    }

    function anchorCount() external view returns (uint256) {
        return _anchorCount;
    }
}
